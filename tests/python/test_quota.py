"""Python imaplib against nestbox's QUOTA (RFC 9208), as Thunderbird uses it: GETQUOTAROOT INBOX
after login, then the usage and limit shown to the user. Started by tests/quota.rs with
`mail.quota = "1M"` on an empty Maildir; the environment is TestServer::client_env's (see
test_imap.py). Standard library only; every socket has a timeout.

Run by hand against a server you started:  cd tests/python && python3 -m unittest -v test_quota
"""

import imaplib
import os
import re
import ssl
import unittest

HOST = os.environ.get("IMAP_HOST", "127.0.0.1")
SPORT = int(os.environ.get("IMAPS_PORT", "1993"))
USER = os.environ.get("IMAP_USER", "alice")
PASSWORD = os.environ.get("IMAP_PASSWORD", "secret")
CA_FILE = os.environ.get("IMAP_CA_FILE", "")
TIMEOUT = 15

MESSAGE = (
    b"From: Alice Example <alice@example.org>\r\n"
    b"Subject: quota\r\n"
    b"\r\n" + b"x" * 3000 + b"\r\n"
)


def connect():
    ctx = ssl.create_default_context(cafile=CA_FILE or None)
    c = imaplib.IMAP4_SSL(HOST, SPORT, ssl_context=ctx, timeout=TIMEOUT)
    typ, _ = c.login(USER, PASSWORD)
    assert typ == "OK"
    return c


def storage(c):
    """(usage, limit) of STORAGE from GETQUOTAROOT INBOX, as a client parses it."""
    typ, data = c.getquotaroot("INBOX")
    assert typ == "OK", (typ, data)
    roots, quotas = data
    assert roots == [b'INBOX "User quota"'], roots
    m = re.fullmatch(rb'"User quota" \(STORAGE (\d+) (\d+)\)', quotas[0])
    assert m, quotas
    return int(m.group(1)), int(m.group(2))


class QuotaTests(unittest.TestCase):
    def setUp(self):
        self.c = connect()

    def tearDown(self):
        try:
            self.c.logout()
        except Exception:
            pass

    def test_getquotaroot_inbox_follows_appends(self):
        caps = self.c.capability()[1][0].decode().upper().split()
        self.assertIn("QUOTA", caps)
        self.assertIn("QUOTA=RES-STORAGE", caps)
        used, limit = storage(self.c)
        self.assertEqual(limit, 1024)
        typ, data = self.c.append("INBOX", None, None, MESSAGE)
        self.assertEqual(typ, "OK", data)
        used2, _ = storage(self.c)
        # STORAGE is in KiB, usage rounded up: one 3 KiB message adds 3 or 4.
        self.assertIn(used2 - used, (3, 4), (used, used2))
        typ, data = self.c.getquota('"User quota"')
        self.assertEqual(typ, "OK", data)
        self.assertEqual(data, [b'"User quota" (STORAGE %d 1024)' % used2])

    def test_setquota_is_refused_and_a_missing_mailbox_has_no_root(self):
        # imaplib returns a NO (it raises only on BAD).
        typ, data = self.c.setquota('"User quota"', "(STORAGE 10)")
        self.assertEqual(typ, "NO")
        self.assertIn(b"[NOPERM]", data[0])
        typ, data = self.c.getquotaroot("Nowhere")
        self.assertEqual(typ, "NO")
        # getquotaroot gives [QUOTAROOT data, QUOTA data]; on a NO, the tagged text.
        self.assertIn(b"[NONEXISTENT]", repr(data).encode())

if __name__ == "__main__":
    unittest.main()
