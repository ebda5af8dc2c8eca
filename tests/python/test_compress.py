"""COMPRESS=DEFLATE (RFC 4978) from Python's imaplib (standard library only: imaplib and zlib).

imaplib has no COMPRESS; a client adds it as imaplib2 and offlineimap do: send COMPRESS DEFLATE,
then wrap the socket, deflating every write with Z_SYNC_FLUSH and inflating every read, both raw
DEFLATE (wbits=-15). The suite then appends messages (one of 1.5 MB, several small ones) to a
fresh folder over the compressed connection and fetches them back, byte for byte, over cleartext
and over implicit TLS. Started by tests/imaplib.rs (TestServer::client_env gives the server).

Run by hand against a server you started:  cd tests/python && python3 -m unittest -v test_compress
"""

import imaplib
import os
import re
import ssl
import unittest
import uuid
import zlib

HOST = os.environ.get("IMAP_HOST", "127.0.0.1")
PORT = int(os.environ.get("IMAP_PORT", "1143"))
SPORT = int(os.environ.get("IMAPS_PORT", "1993"))
USER = os.environ.get("IMAP_USER", "alice")
PASSWORD = os.environ.get("IMAP_PASSWORD", "secret")
CA_FILE = os.environ.get("IMAP_CA_FILE", "")
TIMEOUT = 15

# COMPRESS is valid once authenticated (RFC 4978 section 5: command-auth).
imaplib.Commands.setdefault("COMPRESS", ("AUTH", "SELECTED"))


class Compressing:
    """An imaplib connection that can turn COMPRESS=DEFLATE on. Mixed into IMAP4 / IMAP4_SSL."""

    _deflate = None
    _inflate = None
    _plain = b""  # inflated, not yet read by imaplib

    def compress(self):
        typ, data = self._simple_command("COMPRESS", "DEFLATE")
        if typ != "OK":
            raise self.error(f"COMPRESS refused: {typ} {data}")
        # The server says nothing after its OK until the next command, so imaplib's own read
        # buffer holds no compressed bytes to carry over.
        self._deflate = zlib.compressobj(6, zlib.DEFLATED, -15)
        self._inflate = zlib.decompressobj(-15)
        return typ, data

    def send(self, data):
        if self._deflate is not None:
            data = self._deflate.compress(data) + self._deflate.flush(zlib.Z_SYNC_FLUSH)
        self.sock.sendall(data)

    def _fill(self):
        raw = self.sock.recv(65536)
        if not raw:
            raise self.abort("server closed the compressed connection")
        self._plain += self._inflate.decompress(raw)

    def read(self, size):
        if self._inflate is None:
            return super().read(size)
        while len(self._plain) < size:
            self._fill()
        out, self._plain = self._plain[:size], self._plain[size:]
        return out

    def readline(self):
        if self._inflate is None:
            return super().readline()
        while b"\n" not in self._plain:
            self._fill()
        i = self._plain.index(b"\n") + 1
        out, self._plain = self._plain[:i], self._plain[i:]
        return out


class CompressedIMAP4(Compressing, imaplib.IMAP4):
    pass


class CompressedIMAP4_SSL(Compressing, imaplib.IMAP4_SSL):
    pass


def messages():
    """Distinct messages, CRLF line ends: one of 1.5 MB (several server writes), small ones."""
    out = []
    for i in range(6):
        lines = 30000 if i == 0 else 3 + i
        body = b"".join(
            b"%06d line of message %d, with words that repeat: mailbox folder deflate %d\r\n"
            % (n, i, (n * 7919 + i) % 1000)
            for n in range(lines)
        )
        out.append(
            b"From: Alice <alice@example.org>\r\n"
            b"To: Bob <bob@example.net>\r\n"
            b"Subject: compressed " + str(i).encode() + b"\r\n"
            b"Message-ID: <compress-" + str(i).encode() + b"@example.org>\r\n"
            b"\r\n" + body
        )
    return out


class CompressTests:
    def connect(self):
        raise NotImplementedError

    def setUp(self):
        self.c = self.connect()
        typ, _ = self.c.login(USER, PASSWORD)
        self.assertEqual(typ, "OK")
        typ, data = self.c.capability()
        self.assertIn("COMPRESS=DEFLATE", data[0].decode().upper().split())

    def tearDown(self):
        try:
            self.c.logout()
        except Exception:
            pass

    def test_append_and_fetch_over_deflate(self):
        typ, _ = self.c.compress()
        self.assertEqual(typ, "OK")
        box = f"zip-{uuid.uuid4().hex[:10]}"
        self.assertEqual(self.c.create(box)[0], "OK")
        sent = messages()
        for m in sent:
            typ, data = self.c.append(box, None, None, m)
            self.assertEqual(typ, "OK", data)
        typ, data = self.c.select(box)
        self.assertEqual((typ, data[0]), ("OK", str(len(sent)).encode()))
        typ, data = self.c.fetch("1:*", "(BODY.PEEK[])")
        self.assertEqual(typ, "OK")
        got = {}
        for part in data:
            if isinstance(part, tuple):
                num = int(re.match(rb"(\d+) ", part[0]).group(1))
                got[num] = part[1]
        self.assertEqual(sorted(got), list(range(1, len(sent) + 1)))
        for i, m in enumerate(sent, 1):
            self.assertEqual(got[i], m, f"message {i} came back different")
        # A second COMPRESS is refused, and the session goes on compressed.
        typ, data = self.c._simple_command("COMPRESS", "DEFLATE")
        self.assertEqual(typ, "NO")
        self.assertTrue(data[0].startswith(b"[COMPRESSIONACTIVE]"), data)
        self.assertEqual(self.c.close()[0], "OK")
        self.assertEqual(self.c.delete(box)[0], "OK")


class CleartextCompressTests(CompressTests, unittest.TestCase):
    """The worker has the client's own socket."""

    def connect(self):
        return CompressedIMAP4(HOST, PORT, timeout=TIMEOUT)


class TLSCompressTests(CompressTests, unittest.TestCase):
    """Compression under TLS (RFC 4978 section 3's order)."""

    def connect(self):
        ctx = ssl.create_default_context(cafile=CA_FILE or None)
        return CompressedIMAP4_SSL(HOST, SPORT, ssl_context=ctx, timeout=TIMEOUT)
