"""Python imaplib suite against a running server (started by tests/imaplib.rs).

Standard library only. The server is given by environment variables set by the Rust harness
(tests/common/mod.rs, TestServer::client_env): IMAP_HOST, IMAP_PORT (cleartext + STARTTLS),
IMAPS_PORT (implicit TLS), IMAP_USER, IMAP_PASSWORD, IMAP_CA_FILE, IMAP_SERVER_KIND and
IMAP_PLAINTEXT_ON_LOOPBACK. Every socket has a timeout; nothing talks to any host but IMAP_HOST.

Run by hand against a server you started:  cd tests/python && python3 -m unittest -v test_imap
"""

import email
import imaplib
import os
import re
import socket
import ssl
import time
import unittest
import uuid

HOST = os.environ.get("IMAP_HOST", "127.0.0.1")
PORT = int(os.environ.get("IMAP_PORT", "1143"))
SPORT = int(os.environ.get("IMAPS_PORT", "1993"))
USER = os.environ.get("IMAP_USER", "alice")
PASSWORD = os.environ.get("IMAP_PASSWORD", "secret")
CA_FILE = os.environ.get("IMAP_CA_FILE", "")
KIND = os.environ.get("IMAP_SERVER_KIND", "nestbox")
PLAINTEXT_OK = os.environ.get("IMAP_PLAINTEXT_ON_LOOPBACK", "1") == "1"
TIMEOUT = 15

MESSAGE = (
    b"Date: Mon, 06 Nov 2023 10:00:00 +0100\r\n"
    b"From: Alice Example <alice@example.org>\r\n"
    b"To: Bob <bob@example.net>\r\n"
    b"Subject: imaplib round trip\r\n"
    b"Message-ID: <py-1@example.org>\r\n"
    b"MIME-Version: 1.0\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"\r\n"
    b"Hello from Python.\r\n"
    b"Second line.\r\n"
)


def tls_context():
    ctx = ssl.create_default_context(cafile=CA_FILE or None)
    ctx.check_hostname = True
    return ctx


def connect_tls():
    return imaplib.IMAP4_SSL(HOST, SPORT, ssl_context=tls_context(), timeout=TIMEOUT)


def connect_plain():
    return imaplib.IMAP4(HOST, PORT, timeout=TIMEOUT)


def capabilities(conn):
    typ, data = conn.capability()
    assert typ == "OK", (typ, data)
    return set(data[0].decode().upper().split())


def fresh_mailbox(conn, prefix="py"):
    """Create a mailbox with a unique name so tests do not depend on each other."""
    name = f"{prefix}-{uuid.uuid4().hex[:10]}"
    typ, data = conn.create(name)
    assert typ == "OK", (typ, data)
    return name


def fetch_item(data, name):
    """The value of one FETCH item from imaplib's response list (literal or atom)."""
    for part in data:
        if isinstance(part, tuple):
            head, body = part
            if name.encode() in head.upper():
                return body
    for part in data:
        if isinstance(part, bytes):
            m = re.search(re.escape(name.encode()) + rb" (\d+|\([^)]*\))", part.upper())
            if m:
                return m.group(1)
    return None


@unittest.skipUnless(PLAINTEXT_OK, "server started with plaintext_on_loopback = false")
class TLSSessionTests(unittest.TestCase):
    """Everything a mail client does, over implicit TLS (IMAPS)."""

    def setUp(self):
        self.c = connect_tls()
        typ, _ = self.c.login(USER, PASSWORD)
        self.assertEqual(typ, "OK")

    def tearDown(self):
        try:
            self.c.logout()
        except Exception:
            pass

    def test_capability_after_login(self):
        caps = capabilities(self.c)
        for cap in ["IMAP4REV1", "IDLE", "NAMESPACE", "UIDPLUS", "MOVE", "UNSELECT",
                    "ENABLE", "ESEARCH", "LIST-EXTENDED", "SPECIAL-USE", "LITERAL+"]:
            if cap == "LITERAL+" and "LITERAL-" in caps:
                continue
            self.assertIn(cap, caps)
        self.assertNotIn("STARTTLS", caps, "STARTTLS must not be offered inside TLS")
        self.assertNotIn("LOGINDISABLED", caps)

    def test_list_and_namespace(self):
        typ, data = self.c.list()
        self.assertEqual(typ, "OK")
        lines = [d.decode() for d in data]
        inbox = [l for l in lines if re.search(r'"/" "?INBOX"?$', l)]
        self.assertEqual(len(inbox), 1, lines)
        typ, data = self.c.namespace()
        self.assertEqual(typ, "OK")
        self.assertEqual(data[0], b'(("" "/")) NIL NIL')

    def test_select_empty_and_append(self):
        box = fresh_mailbox(self.c)
        typ, data = self.c.select(box)
        self.assertEqual((typ, data), ("OK", [b"0"]))
        self.assertEqual(self.c.response("UIDNEXT")[1], [b"1"])
        uidvalidity = int(self.c.response("UIDVALIDITY")[1][0])
        self.assertGreater(uidvalidity, 0)
        date = imaplib.Time2Internaldate(time.mktime((2023, 11, 5, 10, 0, 0, 0, 0, -1)))
        typ, data = self.c.append(box, r"(\Flagged $Work)", date, MESSAGE)
        self.assertEqual(typ, "OK")
        m = re.match(rb"\[APPENDUID (\d+) (\d+)\]", data[0])
        self.assertIsNotNone(m, data)
        self.assertEqual(int(m.group(1)), uidvalidity)
        self.assertEqual(int(m.group(2)), 1)
        typ, data = self.c.noop()
        self.assertEqual(self.c.select(box)[1], [b"1"])
        typ, data = self.c.fetch("1", "(UID FLAGS RFC822.SIZE)")
        self.assertEqual(typ, "OK")
        line = data[0].decode()
        self.assertIn("UID 1", line)
        self.assertIn(f"RFC822.SIZE {len(MESSAGE)}", line)
        flags = re.search(r"FLAGS \(([^)]*)\)", line).group(1).split()
        self.assertEqual(sorted(f for f in flags if f != "\\Recent"), ["$Work", "\\Flagged"])

    def test_append_of_several_megabytes(self):
        # Big enough to go to the server's spool file rather than memory (issue 15: the
        # server keeps 256 KiB of a command in memory), in imaplib's way: a synchronizing
        # literal, then the message and its CRLF in separate writes.
        body = b"".join(b"line %07d of a big message, with some text to fill it out\r\n" % i
                        for i in range(100_000))
        big = MESSAGE.replace(b"imaplib round trip", b"imaplib big append") + body
        self.assertGreater(len(big), 5_000_000)
        box = fresh_mailbox(self.c)
        typ, data = self.c.append(box, r"(\Seen)", None, big)
        self.assertEqual(typ, "OK", data)
        self.assertEqual(self.c.select(box)[1], [b"1"])
        typ, data = self.c.fetch("1", "(FLAGS RFC822.SIZE BODY.PEEK[])")
        self.assertEqual(typ, "OK")
        self.assertIn(f"RFC822.SIZE {len(big)}", data[0][0].decode())
        self.assertIn("\\Seen", data[0][0].decode())
        self.assertEqual(fetch_item(data, "BODY[]"), big)

    def test_fetch_items(self):
        box = fresh_mailbox(self.c)
        self.assertEqual(self.c.append(box, None, None, MESSAGE)[0], "OK")
        self.c.select(box)
        # BODY.PEEK[] returns the exact bytes and does not set \Seen.
        typ, data = self.c.fetch("1", "(BODY.PEEK[])")
        self.assertEqual(fetch_item(data, "BODY[]"), MESSAGE)
        typ, data = self.c.fetch("1", "(FLAGS)")
        self.assertNotIn(b"\\Seen", data[0])
        # Partial fetch: <origin.length>, reported as BODY[]<origin>.
        typ, data = self.c.fetch("1", "(BODY.PEEK[]<6.3>)")
        self.assertEqual(typ, "OK")
        self.assertIn(b"BODY[]<6>", data[0][0])
        self.assertEqual(data[0][1], MESSAGE[6:9])
        # Partial past the end is empty, not an error.
        typ, data = self.c.fetch("1", "(BODY.PEEK[]<100000.10>)")
        self.assertEqual(typ, "OK")
        body = fetch_item(data, "BODY[]<100000>")
        self.assertIn(body, (b"", None))
        typ, data = self.c.fetch("1", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
        self.assertEqual(fetch_item(data, "BODY[HEADER.FIELDS (SUBJECT)]"),
                         b"Subject: imaplib round trip\r\n\r\n")
        typ, data = self.c.fetch("1", "(BODY.PEEK[TEXT])")
        self.assertEqual(fetch_item(data, "BODY[TEXT]"), b"Hello from Python.\r\nSecond line.\r\n")
        typ, data = self.c.fetch("1", "(BODY.PEEK[1])")
        self.assertEqual(fetch_item(data, "BODY[1]"), b"Hello from Python.\r\nSecond line.\r\n")
        typ, data = self.c.fetch("1", "(ENVELOPE)")
        env = data[0].decode()
        self.assertIn('"Mon, 06 Nov 2023 10:00:00 +0100" "imaplib round trip"', env)
        self.assertIn('(("Alice Example" NIL "alice" "example.org"))', env)
        self.assertIn('"<py-1@example.org>"', env)
        typ, data = self.c.fetch("1", "(BODYSTRUCTURE)")
        bs = data[0].decode().lower()
        self.assertRegex(bs, r'bodystructure \("text" "plain" \("charset" "utf-8"\) nil nil "7bit" 34 2 ')
        # BODY[] (not PEEK) sets \Seen, reported in the same response (RFC 9051 §6.4.5).
        typ, data = self.c.fetch("1", "(BODY[])")
        joined = b" ".join(p[0] if isinstance(p, tuple) else p for p in data)
        self.assertIn(b"\\Seen", joined)
        typ, data = self.c.fetch("1", "(FLAGS)")
        self.assertIn(b"\\Seen", data[0])
        self.assertEqual(email.message_from_bytes(MESSAGE)["Subject"], "imaplib round trip")

    def test_search_store_copy_move_expunge(self):
        box = fresh_mailbox(self.c)
        other = fresh_mailbox(self.c, "dest")
        for i in range(5):
            msg = MESSAGE.replace(b"imaplib round trip", f"number {i}".encode())
            self.assertEqual(self.c.append(box, None, None, msg)[0], "OK")
        self.c.select(box)
        self.assertEqual(self.c.search(None, "SUBJECT", '"number 3"'), ("OK", [b"4"]))
        self.assertEqual(self.c.uid("SEARCH", "ALL"), ("OK", [b"1 2 3 4 5"]))
        typ, data = self.c.store("2:3", "+FLAGS", r"(\Seen)")
        self.assertEqual(typ, "OK")
        self.assertEqual(self.c.search(None, "SEEN"), ("OK", [b"2 3"]))
        self.assertEqual(self.c.search(None, "UNSEEN"), ("OK", [b"1 4 5"]))
        typ, data = self.c.copy("1:2", other)
        self.assertEqual(typ, "OK")
        self.assertRegex(data[0], rb"^\[COPYUID \d+ (1:2|1,2) (1:2|1,2)\]")
        typ, data = self.c.uid("MOVE", "5", other)
        self.assertEqual(typ, "OK")
        # MOVE expunges from the source with an untagged EXPUNGE (RFC 6851 §3.3).
        self.assertEqual(self.c.response("EXPUNGE"), ("EXPUNGE", [b"5"]))
        self.assertEqual(self.c.search(None, "ALL"), ("OK", [b"1 2 3 4"]))
        self.c.store("1", "+FLAGS.SILENT", r"(\Deleted)")
        typ, data = self.c.expunge()
        self.assertEqual((typ, data), ("OK", [b"1"]))
        self.assertEqual(self.c.uid("SEARCH", "ALL"), ("OK", [b"2 3 4"]))
        typ, data = self.c.status(other, "(MESSAGES UIDNEXT)")
        self.assertEqual(typ, "OK")
        self.assertRegex(data[0].decode(), r"\(MESSAGES 3 UIDNEXT 4\)|\(UIDNEXT 4 MESSAGES 3\)")
        self.c.close()
        self.assertEqual(self.c.state, "AUTH")

    def test_idle_sees_append_from_other_session(self):
        box = fresh_mailbox(self.c)
        self.c.select(box)
        # imaplib 3.11 has no idle(): speak it raw on the same buffered connection.
        tag = self.c._new_tag().decode()
        self.c.send(f"{tag} IDLE\r\n".encode())
        self.c.sock.settimeout(10)
        self.assertTrue(self.c.readline().startswith(b"+"))
        other = connect_tls()
        try:
            other.login(USER, PASSWORD)
            self.assertEqual(other.append(box, None, None, MESSAGE)[0], "OK")
        finally:
            other.logout()
        line = self.c.readline()
        while line.startswith(b"* OK") or re.match(rb"\* \d+ RECENT", line):
            line = self.c.readline()
        self.assertEqual(line, b"* 1 EXISTS\r\n")
        self.c.send(b"DONE\r\n")
        for _ in range(20):
            line = self.c.readline()
            self.assertTrue(line, "connection closed during IDLE")
            if line.startswith(tag.encode()):
                break
        self.assertTrue(line.startswith(f"{tag} OK".encode()), line)
        self.assertEqual(self.c.noop()[0], "OK")

    def test_bad_command_keeps_session(self):
        with self.assertRaises(imaplib.IMAP4.error):
            self.c.xatom("FROBNICATE")
        self.assertEqual(self.c.noop()[0], "OK")


@unittest.skipUnless(PLAINTEXT_OK, "server started with plaintext_on_loopback = false")
class StartTLSTests(unittest.TestCase):
    """The cleartext port: STARTTLS, then a normal session."""

    def test_starttls_then_login(self):
        c = connect_plain()
        try:
            self.assertIn("STARTTLS", capabilities(c))
            typ, _ = c.starttls(ssl_context=tls_context())
            self.assertEqual(typ, "OK")
            caps = capabilities(c)
            self.assertNotIn("STARTTLS", caps)
            self.assertIn("AUTH=PLAIN", caps)
            self.assertEqual(c.login(USER, PASSWORD)[0], "OK")
            typ, data = c.select("INBOX")
            self.assertEqual(typ, "OK")
            # A second STARTTLS is refused (RFC 9051 §6.2.1).
            with self.assertRaises(imaplib.IMAP4.error):
                c._simple_command("STARTTLS")
        finally:
            c.logout()

    def test_plaintext_login_on_loopback(self):
        c = connect_plain()
        try:
            self.assertNotIn("LOGINDISABLED", capabilities(c))
            self.assertEqual(c.login(USER, PASSWORD)[0], "OK")
        finally:
            c.logout()

    def test_wrong_password(self):
        c = connect_tls()
        try:
            with self.assertRaises(imaplib.IMAP4.error) as e:
                c.login(USER, "wrong")
            self.assertIn("AUTHENTICATIONFAILED", str(e.exception))
        finally:
            c.shutdown()

    def test_authenticate_plain(self):
        c = connect_tls()
        try:
            typ, _ = c.authenticate("PLAIN", lambda _: f"\0{USER}\0{PASSWORD}".encode())
            self.assertEqual(typ, "OK")
            self.assertEqual(c.state, "AUTH")
        finally:
            c.logout()


@unittest.skipIf(PLAINTEXT_OK, "needs a server with plaintext_on_loopback = false")
class LoginDisabledTests(unittest.TestCase):
    """With plaintext_on_loopback = false, cleartext login is refused until STARTTLS."""

    def test_logindisabled_advertised_and_enforced(self):
        c = connect_plain()
        try:
            caps = capabilities(c)
            self.assertIn("LOGINDISABLED", caps)
            self.assertIn("STARTTLS", caps)
            # imaplib raises on BAD but returns NO: either refusal is fine (RFC 9051 §6.2.3).
            try:
                typ, _ = c._simple_command("LOGIN", USER, PASSWORD)
            except imaplib.IMAP4.error:
                typ = "BAD"
            self.assertIn(typ, ("NO", "BAD"))
            self.assertEqual(c.state, "NONAUTH")
            self.assertEqual(c.starttls(ssl_context=tls_context())[0], "OK")
            caps = capabilities(c)
            self.assertNotIn("LOGINDISABLED", caps)
            self.assertEqual(c.login(USER, PASSWORD)[0], "OK")
        finally:
            c.logout()

    def test_implicit_tls_allows_login(self):
        c = connect_tls()
        try:
            self.assertNotIn("LOGINDISABLED", capabilities(c))
            self.assertEqual(c.login(USER, PASSWORD)[0], "OK")
        finally:
            c.logout()


if __name__ == "__main__":
    unittest.main()
