"""Live sync with a real MTA: Postfix delivers while an imaplib client IDLEs (issue 3).

Started by tests/live_sync.rs (postfix_delivery_reaches_imaplib_idle), which runs a throwaway
Postfix instance on 127.0.0.1 delivering alice@test.local into the test server's Maildir and
passes, besides the IMAP_* variables of TestServer::client_env:
  SMTP_PORT           Postfix's smtpd on 127.0.0.1
  SMTP_RCPT           the recipient that lands in IMAP_USER's INBOX
  POSTFIX_CONFIG_DIR  the instance's config dir, for `sendmail -C`

Standard library only. imaplib (3.11) has no IDLE, so IDLE is spoken on imaplib's own socket
with its tag generator; every read has a timeout and nothing talks to any host but 127.0.0.1.
"""

import imaplib
import os
import re
import smtplib
import socket
import subprocess
import time
import unittest
import uuid

HOST = os.environ.get("IMAP_HOST", "127.0.0.1")
PORT = int(os.environ.get("IMAP_PORT", "1143"))
USER = os.environ.get("IMAP_USER", "alice")
PASSWORD = os.environ.get("IMAP_PASSWORD", "secret")
SMTP_PORT = int(os.environ.get("SMTP_PORT", "0"))
RCPT = os.environ.get("SMTP_RCPT", "alice@test.local")
POSTFIX_CONFIG_DIR = os.environ.get("POSTFIX_CONFIG_DIR", "")
TIMEOUT = 15
# Postfix queues, then virtual(8) writes tmp/ and renames into new/; then nestbox pushes.
DELIVERY_TIMEOUT = 30


def mail(subject, message_id):
    return (
        "From: Bob <bob@example.net>\r\n"
        f"To: <{RCPT}>\r\n"
        f"Subject: {subject}\r\n"
        f"Message-ID: <{message_id}>\r\n"
        "Date: Mon, 06 Nov 2023 10:00:00 +0000\r\n"
        "\r\n"
        "Delivered by a real Postfix.\r\n"
    ).encode()


class Idler:
    """IDLE on an imaplib connection: send `<tag> IDLE`, read raw lines, `DONE`."""

    def __init__(self, conn):
        self.conn = conn
        self.tag = None

    def start(self):
        self.tag = self.conn._new_tag()
        self.conn.send(self.tag + b" IDLE\r\n")
        line = self.readline(TIMEOUT)
        while line.startswith(b"* "):
            line = self.readline(TIMEOUT)
        if not line.startswith(b"+"):
            raise AssertionError(f"IDLE refused: {line!r}")

    def readline(self, timeout):
        self.conn.sock.settimeout(timeout)
        try:
            line = self.conn.readline()
        finally:
            self.conn.sock.settimeout(TIMEOUT)
        if not line:
            raise AssertionError("server closed the connection during IDLE")
        return line.rstrip(b"\r\n")

    def wait_exists(self, timeout):
        """Lines until `* N EXISTS`; returns (N, every line read)."""
        deadline = time.monotonic() + timeout
        seen = []
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no EXISTS within {timeout} s; got {seen!r}")
            try:
                line = self.readline(left)
            except (socket.timeout, TimeoutError):
                raise AssertionError(f"no EXISTS within {timeout} s; got {seen!r}")
            seen.append(line)
            m = re.fullmatch(rb"\* (\d+) EXISTS", line)
            if m:
                return int(m.group(1)), seen

    def done(self):
        self.conn.send(b"DONE\r\n")
        while True:
            line = self.readline(TIMEOUT)
            if line.startswith(self.tag + b" "):
                if not line.startswith(self.tag + b" OK"):
                    raise AssertionError(f"IDLE ended with {line!r}")
                return
            if not line.startswith(b"* "):
                raise AssertionError(f"unexpected line after DONE: {line!r}")


@unittest.skipUnless(SMTP_PORT, "needs SMTP_PORT (run through cargo test --test live_sync)")
class PostfixDeliveryDuringIdle(unittest.TestCase):
    def setUp(self):
        self.conn = imaplib.IMAP4(HOST, PORT, timeout=TIMEOUT)
        self.conn.login(USER, PASSWORD)
        typ, data = self.conn.select("INBOX")
        self.assertEqual(typ, "OK")
        self.exists = int(data[0])

    def tearDown(self):
        try:
            self.conn.logout()
        except Exception:
            pass

    def fetch_subject(self, seq):
        typ, data = self.conn.fetch(str(seq), "(BODY.PEEK[HEADER.FIELDS (SUBJECT MESSAGE-ID)])")
        self.assertEqual(typ, "OK")
        headers = b"".join(part[1] for part in data if isinstance(part, tuple))
        return headers.decode("ascii", "replace")

    def deliver_and_expect(self, send, subject, message_id):
        idler = Idler(self.conn)
        idler.start()
        send(mail(subject, message_id))
        n, lines = idler.wait_exists(DELIVERY_TIMEOUT)
        idler.done()
        self.assertEqual(n, self.exists + 1, f"one new message: {lines!r}")
        self.exists = n
        headers = self.fetch_subject(n)
        self.assertIn(f"Subject: {subject}", headers)
        self.assertIn(f"<{message_id}>", headers)
        # It is findable too, and only once.
        typ, data = self.conn.search(None, "HEADER", "Message-ID", message_id)
        self.assertEqual(typ, "OK")
        self.assertEqual(data[0].split(), [str(n).encode()])

    def test_smtp_delivery_pushes_exists(self):
        def send(msg):
            with smtplib.SMTP("127.0.0.1", SMTP_PORT, timeout=TIMEOUT) as s:
                refused = s.sendmail("bob@example.net", [RCPT], msg)
                self.assertEqual(refused, {})

        self.deliver_and_expect(send, "via smtp", f"smtp-{uuid.uuid4()}@example.net")
        # A second one on the same connection: the watch survives the first sync.
        self.deliver_and_expect(send, "via smtp again", f"smtp2-{uuid.uuid4()}@example.net")

    @unittest.skipUnless(POSTFIX_CONFIG_DIR, "needs POSTFIX_CONFIG_DIR")
    def test_sendmail_delivery_pushes_exists(self):
        def send(msg):
            # postdrop -> pickup -> cleanup -> qmgr -> virtual: the local submission path.
            subprocess.run(
                ["sendmail", "-C", POSTFIX_CONFIG_DIR, "-f", "bob@example.net", "-i", RCPT],
                input=msg,
                check=True,
                timeout=TIMEOUT,
            )

        self.deliver_and_expect(send, "via sendmail", f"sm-{uuid.uuid4()}@example.net")


if __name__ == "__main__":
    unittest.main()
