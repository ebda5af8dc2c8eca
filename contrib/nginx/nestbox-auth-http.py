#!/usr/bin/env python3
"""nginx mail proxy auth_http responder for nestbox: routes each user to the nestbox
host that has their Maildir.

nginx's mail proxy (ngx_mail_module, Debian's libnginx-mod-mail) asks an HTTP server
where to send a client once it has its user name and password: it sends the request
headers Auth-User, Auth-Pass, Auth-Protocol (imap, pop3, smtp), Auth-Login-Attempt and
Client-IP, and expects Auth-Status: OK with Auth-Server (an IP address) and Auth-Port, or
an error text in Auth-Status (with Auth-Wait: seconds before nginx answers the client).

This responder only routes. It never looks at the password: nginx then logs in to the
chosen nestbox with the client's user name and password, and nestbox checks them, delays
repeated failures and writes the "auth failed: ... rip=<client>" line fail2ban bans on
(with the PROXY protocol, nestbox sees the client's address, not nginx's). So there is one
password database, nestbox's, and no second place that could disagree with it or leak it.
The cost: a wrong password costs one connection to a backend.

The map file has one route per line, '#' starts a comment:

    alice@example.org   10.0.0.11:143
    bob                 10.0.0.12:143
    *                   10.0.0.11:143      # everyone else (optional)

Ports can differ per protocol: "alice 10.0.0.11:143 pop3=10.0.0.11:110". Without a
pop3= entry, POP3 goes to the same host on port 110. A user not in the map and no '*' line
gets "Invalid login or password" (nginx then answers the client like a failed login);
with a '*' line, unknown names still reach a backend, which logs the failed login for
fail2ban. The file is read again when it changes, so moving a user (docs/scale-out.md) is
an edit of one line.

Usage: nestbox-auth-http.py --listen 127.0.0.1:9143 --map /etc/nestbox/routes
nginx:  mail { auth_http 127.0.0.1:9143/auth; proxy_protocol on; ... }
Python 3 standard library only.
"""

import argparse
import http.server
import ipaddress
import os
import socket
import sys
import threading


class Routes:
    """The map file, re-read when its modification time changes."""

    def __init__(self, path):
        self.path = path
        self.mtime = None
        self.table = {}
        self.lock = threading.Lock()

    @staticmethod
    def parse_target(text):
        host, sep, port = text.rpartition(":")
        if not sep:
            raise ValueError(f"{text!r}: expected ADDRESS:PORT")
        host = host.strip("[]")
        ipaddress.ip_address(host)  # nginx wants an address, not a name
        port = int(port)
        if not 0 < port < 65536:
            raise ValueError(f"{text!r}: bad port")
        return host, port

    def load(self):
        table = {}
        with open(self.path, encoding="utf-8") as f:
            for n, raw in enumerate(f, 1):
                line = raw.split("#", 1)[0].split()
                if not line:
                    continue
                if len(line) < 2:
                    raise ValueError(f"{self.path}:{n}: expected USER ADDRESS:PORT")
                user, targets = line[0], {}
                targets["imap"] = self.parse_target(line[1])
                for extra in line[2:]:
                    proto, _, t = extra.partition("=")
                    targets[proto.lower()] = self.parse_target(t)
                if "pop3" not in targets:
                    targets["pop3"] = (targets["imap"][0], 110)
                table[user] = targets
        return table

    def route(self, user, protocol):
        with self.lock:
            try:
                mtime = os.stat(self.path).st_mtime_ns
                if mtime != self.mtime:
                    self.table = self.load()
                    self.mtime = mtime
            except (OSError, ValueError) as e:
                # Keep the last good table: a bad edit must not take every user offline.
                print(f"nestbox-auth-http: {e}", file=sys.stderr, flush=True)
            targets = self.table.get(user) or self.table.get("*")
        if targets is None:
            return None
        return targets.get(protocol) or targets.get("imap")


def handler_for(routes):
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.0"

        def do_GET(self):
            user = self.headers.get("Auth-User", "")
            protocol = self.headers.get("Auth-Protocol", "imap").lower()
            target = routes.route(user, protocol) if user else None
            self.send_response(200)
            if target is None:
                self.send_header("Auth-Status", "Invalid login or password")
                self.send_header("Auth-Wait", "3")
            else:
                self.send_header("Auth-Status", "OK")
                self.send_header("Auth-Server", target[0])
                self.send_header("Auth-Port", str(target[1]))
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, fmt, *args):
            # The password is in a header, never in the request line; log routing only.
            user = self.headers.get("Auth-User", "-") if self.headers else "-"
            client = self.headers.get("Client-IP", "-") if self.headers else "-"
            print(f"auth_http user={user!r} client={client}", file=sys.stderr, flush=True)

    return Handler


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--listen", default="127.0.0.1:9143", help="ADDRESS:PORT to serve on")
    p.add_argument("--map", required=True, help="the routes file (see the module doc)")
    a = p.parse_args()
    routes = Routes(a.map)
    routes.mtime = os.stat(a.map).st_mtime_ns
    routes.table = routes.load()  # a broken file at start is an error, not an empty table
    host, port = Routes.parse_target(a.listen)
    server_class = http.server.ThreadingHTTPServer
    if ":" in host:
        class V6(server_class):
            address_family = socket.AF_INET6
        server_class = V6
    server = server_class((host, port), handler_for(routes))
    print(f"nestbox-auth-http: listening on {a.listen}", file=sys.stderr, flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
