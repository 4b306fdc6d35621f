# A fault-injecting reverse proxy for berth's registry tests (issue 9).
#
#   python3 faulty_proxy.py UPSTREAM_PORT [RULE ...]
#
# Listens on 127.0.0.1 on a port the kernel picks (printed on stdout, one
# line) and forwards every request to http://127.0.0.1:UPSTREAM_PORT, except
# where a rule applies. A rule is MATCH=ACTION[:ARG][*COUNT]:
#   MATCH   a substring of the request path ("/blobs/", "/manifests/latest")
#   ACTION  drop:N     close the connection after N bytes of the body
#           corrupt:N  flip the byte at offset N of the body
#           slow:MS    sleep MS milliseconds before each 64 KiB of the body
#           status:C   answer with HTTP status C (Retry-After: 1 for 429)
#   COUNT   how many matching requests the rule applies to (default: all)
# Each request is logged to stderr as "METHOD PATH -> what happened", so a
# test can count retries and see resumed ranges.
# Loopback only: it never connects anywhere but 127.0.0.1.

import http.client
import http.server
import socketserver
import sys
import time

UPSTREAM = int(sys.argv[1])
RULES = []
for spec in sys.argv[2:]:
    match, rest = spec.split("=", 1)
    count = None
    if "*" in rest:
        rest, c = rest.rsplit("*", 1)
        count = int(c)
    action, _, arg = rest.partition(":")
    RULES.append({"match": match, "action": action, "arg": arg, "left": count})


def rule_for(path):
    for r in RULES:
        if r["match"] in path and (r["left"] is None or r["left"] > 0):
            if r["left"] is not None:
                r["left"] -= 1
            return r
    return None


class Proxy(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def note(self, what):
        sys.stderr.write("%s %s -> %s\n" % (self.command, self.path, what))
        sys.stderr.flush()

    def forward(self):
        rule = rule_for(self.path)
        if rule and rule["action"] == "status":
            code = int(rule["arg"])
            self.send_response(code)
            if code == 429:
                self.send_header("Retry-After", "1")
            self.send_header("Content-Length", "0")
            self.end_headers()
            self.note("status %d" % code)
            return
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        up = http.client.HTTPConnection("127.0.0.1", UPSTREAM, timeout=60)
        headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
        headers["Host"] = "127.0.0.1:%d" % UPSTREAM
        up.request(self.command, self.path, body=body, headers=headers)
        resp = up.getresponse()
        data = resp.read()
        self.send_response(resp.status)
        for k, v in resp.getheaders():
            if k.lower() in ("transfer-encoding", "connection", "content-length"):
                continue
            if k.lower() == "location":
                v = v.replace("127.0.0.1:%d" % UPSTREAM, self.headers.get("Host", ""))
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command == "HEAD":
            self.note("%d" % resp.status)
            return
        action = rule["action"] if rule else None
        if action == "drop":
            n = int(rule["arg"])
            self.wfile.write(data[:n])
            self.wfile.flush()
            self.note("dropped after %d of %d bytes" % (n, len(data)))
            self.close_connection = True
            return
        if action == "corrupt":
            n = int(rule["arg"])
            if n < len(data):
                data = data[:n] + bytes([data[n] ^ 0xFF]) + data[n + 1:]
            self.wfile.write(data)
            self.note("corrupted byte %d" % n)
            return
        if action == "slow":
            ms = int(rule["arg"])
            for i in range(0, len(data), 65536):
                time.sleep(ms / 1000.0)
                self.wfile.write(data[i:i + 65536])
            self.note("slow %d bytes" % len(data))
            return
        self.wfile.write(data)
        self.note("%d %d bytes" % (resp.status, len(data)))

    do_GET = forward
    do_HEAD = forward
    do_PUT = forward
    do_POST = forward
    do_PATCH = forward
    do_DELETE = forward


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True


srv = Server(("127.0.0.1", 0), Proxy)
print(srv.server_address[1], flush=True)
srv.serve_forever()
