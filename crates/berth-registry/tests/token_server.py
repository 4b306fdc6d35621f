#!/usr/bin/env python3
"""A registry front that demands Bearer tokens, and its token server, for
berth's tests. Listens on 127.0.0.1 only.

  token_server.py PORT_FILE LOG_FILE USER PASSWORD [UPSTREAM_PORT]

/token: GET with Basic USER:PASSWORD (a token, and with offline_token=true
a refresh token) or without credentials (an anonymous token); POST the
OAuth2 form with grant_type=refresh_token. Wrong credentials: 401 with
{"details": "incorrect username or password"}.
/v2/...: 200 {} for a token issued to USER, else 401 with a Bearer
challenge (error="invalid_token" for a token it does not know).
With UPSTREAM_PORT, a request under /v2/ that carries a token issued to
USER is passed to the registry on 127.0.0.1:UPSTREAM_PORT (any method,
body and headers; Location rewritten to this front), so berth pulls from
and pushes to a real registry behind token auth.
Each token request is appended to LOG_FILE as one JSON line (method,
query/form keys and values except secrets, whether Basic auth came).
"""
import base64
import json
import os
import sys
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PORT_FILE, LOG_FILE, USER, PASSWORD = sys.argv[1:5]
UPSTREAM = int(sys.argv[5]) if len(sys.argv) > 5 else None
# TLS_CERT and TLS_KEY in the environment: the front (and its realm) speak
# https with that certificate.
TLS = os.environ.get("TLS_CERT") and os.environ.get("TLS_KEY")
REFRESH = "refresh-for-" + USER
lock = threading.Lock()
tokens = {}  # token -> user ("" for anonymous)
counter = [0]


def new_token(user):
    with lock:
        counter[0] += 1
        t = "tok%d%s" % (counter[0], "-anon" if not user else "")
        tokens[t] = user
        return t


def log(entry):
    with lock, open(LOG_FILE, "a") as f:
        f.write(json.dumps(entry) + "\n")


class H(BaseHTTPRequestHandler):
    def log_message(self, *a):
        pass

    def reply(self, code, body, headers=()):
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in headers:
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def realm(self):
        scheme = "https" if TLS else "http"
        return "%s://127.0.0.1:%d/token" % (scheme, self.server.server_address[1])

    def basic_user(self):
        h = self.headers.get("Authorization", "")
        if not h.startswith("Basic "):
            return None
        try:
            user, _, pw = base64.b64decode(h[6:]).decode().partition(":")
        except Exception:
            return False
        return user if (user, pw) == (USER, PASSWORD) else False

    def do_GET(self):
        url = urllib.parse.urlsplit(self.path)
        if url.path == "/token":
            q = urllib.parse.parse_qs(url.query)
            user = self.basic_user()
            log({"method": "GET", "query": q, "basic": user is not None})
            if user is False:
                return self.reply(401, {"details": "incorrect username or password"})
            body = {"token": new_token(user or ""), "expires_in": 300}
            if user and q.get("offline_token") == ["true"]:
                body["refresh_token"] = REFRESH
            return self.reply(200, body)
        if url.path.startswith("/v2/"):
            h = self.headers.get("Authorization", "")
            challenge = 'Bearer realm="%s",service="stub-registry"' % self.realm()
            if h.startswith("Bearer "):
                if tokens.get(h[7:]) == USER:
                    if UPSTREAM:
                        return self.proxy()
                    return self.reply(200, {})
                if h[7:] not in tokens:
                    challenge += ',error="invalid_token"'
            return self.reply(
                401,
                {"errors": [{"code": "UNAUTHORIZED", "message": "authentication required"}]},
                [("WWW-Authenticate", challenge)],
            )
        self.reply(404, {})

    def proxy(self):
        import http.client

        n = int(self.headers.get("Content-Length", "0") or 0)
        body = self.rfile.read(n) if n else None
        up = http.client.HTTPConnection("127.0.0.1", UPSTREAM, timeout=60)
        headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "authorization")}
        up.request(self.command, self.path, body=body, headers=headers)
        resp = up.getresponse()
        data = resp.read()
        self.send_response(resp.status)
        me = "127.0.0.1:%d" % self.server.server_address[1]
        for k, v in resp.getheaders():
            if k.lower() in ("transfer-encoding", "connection", "content-length"):
                continue
            if k.lower() == "location":
                v = v.replace("127.0.0.1:%d" % UPSTREAM, me)
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def guarded(self):
        h = self.headers.get("Authorization", "")
        if UPSTREAM and h.startswith("Bearer ") and tokens.get(h[7:]) == USER:
            return self.proxy()
        challenge = 'Bearer realm="%s",service="stub-registry"' % self.realm()
        n = int(self.headers.get("Content-Length", "0") or 0)
        if n:
            self.rfile.read(n)
        if self.command == "HEAD":
            self.send_response(401)
            self.send_header("WWW-Authenticate", challenge)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.reply(
            401,
            {"errors": [{"code": "UNAUTHORIZED", "message": "authentication required"}]},
            [("WWW-Authenticate", challenge)],
        )

    def do_HEAD(self):
        self.guarded()

    def do_PUT(self):
        self.guarded()

    def do_PATCH(self):
        self.guarded()

    def do_DELETE(self):
        self.guarded()

    def do_POST(self):
        url = urllib.parse.urlsplit(self.path)
        if url.path.startswith("/v2/"):
            return self.guarded()
        n = int(self.headers.get("Content-Length", "0"))
        form = urllib.parse.parse_qs(self.rfile.read(n).decode())
        if url.path != "/token":
            return self.reply(404, {})
        ok = form.get("grant_type") == ["refresh_token"] and form.get("refresh_token") == [REFRESH]
        shown = {k: v for k, v in form.items() if k != "refresh_token"}
        log({"method": "POST", "form": shown, "refresh_ok": ok})
        if not ok:
            return self.reply(401, {"error": "invalid_grant"})
        self.reply(200, {"access_token": new_token(USER), "expires_in": 300})


server = ThreadingHTTPServer(("127.0.0.1", 0), H)
if TLS:
    import ssl

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(os.environ["TLS_CERT"], os.environ["TLS_KEY"])
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
with open(PORT_FILE + ".tmp", "w") as f:
    f.write(str(server.server_address[1]))
os.rename(PORT_FILE + ".tmp", PORT_FILE)
server.serve_forever()
