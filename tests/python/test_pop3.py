"""Python poplib suite against a running server (started by tests/pop3.rs).

Standard library only. The server is given by environment variables set by the Rust harness
(tests/common/mod.rs, TestServer::client_env): IMAP_HOST, POP3_PORT (cleartext + STLS),
POP3S_PORT (implicit TLS), IMAP_USER, IMAP_PASSWORD, IMAP_CA_FILE and IMAP_MAILDIR (alice's
Maildir, seeded with tests/fixtures/maildirs/pop3). Every socket has a timeout; nothing talks
to any host but IMAP_HOST.

The two tests share one Maildir and run in order (unittest sorts by name): the STLS test only
reads; the implicit-TLS test deletes message 1 and then checks the Maildir.

Run by hand against a server you started:  cd tests/python && python3 -m unittest -v test_pop3
"""

import os
import poplib
import ssl
import unittest

HOST = os.environ.get("IMAP_HOST", "127.0.0.1")
PORT = int(os.environ.get("POP3_PORT", "1110"))
SPORT = int(os.environ.get("POP3S_PORT", "1995"))
USER = os.environ.get("IMAP_USER", "alice")
PASSWORD = os.environ.get("IMAP_PASSWORD", "secret")
CA_FILE = os.environ.get("IMAP_CA_FILE", "")
MAILDIR = os.environ.get("IMAP_MAILDIR", "")
TIMEOUT = 15


def tls_context():
    ctx = ssl.create_default_context(cafile=CA_FILE or None)
    ctx.check_hostname = True
    return ctx


def crlf(data):
    """A message file as POP3 carries it: bare LF turned into CRLF."""
    return data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def maildir_files():
    """{path: bytes} of every message file in INBOX (cur/ and new/)."""
    out = {}
    for sub in ("cur", "new"):
        d = os.path.join(MAILDIR, sub)
        for name in os.listdir(d):
            p = os.path.join(d, name)
            with open(p, "rb") as f:
                out[p] = f.read()
    return out


def retrieved(lines):
    """poplib's RETR lines (already dot-unstuffed) as the bytes the server sent."""
    return b"".join(line + b"\r\n" for line in lines)


class Pop3Tests(unittest.TestCase):
    def check_session(self, conn):
        """stat, list, uidl, retr and top of every message against the Maildir's files;
        returns {message number: its file's bytes in CRLF form}. File names are not kept:
        RETR sets \\Seen, which renames the file at QUIT."""
        files = maildir_files()
        count, size = conn.stat()
        self.assertEqual(count, len(files))
        resp, listing, _ = conn.list()
        self.assertTrue(resp.startswith(b"+OK"), resp)
        sizes = {int(n): int(s) for n, s in (l.split() for l in listing)}
        self.assertEqual(sorted(sizes), list(range(1, count + 1)))
        self.assertEqual(sum(sizes.values()), size)
        resp, uidls, _ = conn.uidl()
        uids = [l.split()[1] for l in uidls]
        self.assertEqual(len(set(uids)), count, uidls)
        unmatched = [crlf(b) for b in files.values()]
        by_number = {}
        for n in range(1, count + 1):
            resp, lines, octets = conn.retr(n)
            self.assertTrue(resp.startswith(b"+OK"), resp)
            got = retrieved(lines)
            # A file without a final line break: RETR ends its last line for the framing.
            match = [m for m in unmatched if m == got or m + b"\r\n" == got]
            self.assertEqual(len(match), 1, f"RETR {n} matches no message file: {got[:200]!r}")
            self.assertEqual(sizes[n], len(match[0]), f"LIST {n} is not the CRLF size")
            unmatched.remove(match[0])
            by_number[n] = match[0]
            resp, top, _ = conn.top(n, 0)
            head = retrieved(top)
            self.assertTrue(got.startswith(head), (n, head[:100]))
            self.assertTrue(head.endswith(b"\r\n\r\n"), (n, head[-20:]))
        return by_number

    def test_1_stls(self):
        conn = poplib.POP3(HOST, PORT, timeout=TIMEOUT)
        try:
            caps = conn.capa()
            self.assertIn("STLS", caps)
            conn.stls(context=tls_context())
            self.assertNotIn("STLS", conn.capa())
            conn.user(USER)
            conn.pass_(PASSWORD)
            self.check_session(conn)
        finally:
            conn.quit()
        # Only read: every file is still there.
        self.assertEqual(len(maildir_files()), 5)

    def test_2_implicit_tls_dele(self):
        conn = poplib.POP3_SSL(HOST, SPORT, context=tls_context(), timeout=TIMEOUT)
        try:
            conn.user(USER)
            conn.pass_(PASSWORD)
            by_number = self.check_session(conn)
            resp = conn.dele(1)
            self.assertTrue(resp.startswith(b"+OK"), resp)
            with self.assertRaises(poplib.error_proto):
                conn.retr(1)
            self.assertEqual(conn.stat()[0], 4)
        finally:
            resp = conn.quit()
        self.assertTrue(resp.startswith(b"+OK"), resp)
        left = sorted(crlf(b) for b in maildir_files().values())
        self.assertNotIn(by_number[1], left, "the deleted message is still in the Maildir")
        self.assertEqual(left, sorted(by_number[n] for n in range(2, 6)))


if __name__ == "__main__":
    unittest.main()
