#!/usr/bin/env python3
"""A registry front that demands Bearer tokens, and its token server, for
berth's tests. Listens on 127.0.0.1 only.

  token_server.py PORT_FILE LOG_FILE USER PASSWORD

/token: GET with Basic USER:PASSWORD (a token, and with offline_token=true
a refresh token) or without credentials (an anonymous token); POST the
OAuth2 form with grant_type=refresh_token. Wrong credentials: 401 with
{"details": "incorrect username or password"}.
/v2/...: 200 {} for a token issued to USER, else 401 with a Bearer
challenge (error="invalid_token" for a token it does not know).
Each token request is appended to LOG_FILE as one JSON line (method,
query/form keys and values except secrets, whether Basic auth came).
"""
import base64
import json
import sys
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PORT_FILE, LOG_FILE, USER, PASSWORD = sys.argv[1:5]
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
        return "http://127.0.0.1:%d/token" % self.server.server_address[1]

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
                    return self.reply(200, {})
                if h[7:] not in tokens:
                    challenge += ',error="invalid_token"'
            return self.reply(
                401,
                {"errors": [{"code": "UNAUTHORIZED", "message": "authentication required"}]},
                [("WWW-Authenticate", challenge)],
            )
        self.reply(404, {})

    def do_POST(self):
        url = urllib.parse.urlsplit(self.path)
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
with open(PORT_FILE + ".tmp", "w") as f:
    f.write(str(server.server_address[1]))
import os  # noqa: E402

os.rename(PORT_FILE + ".tmp", PORT_FILE)
server.serve_forever()
