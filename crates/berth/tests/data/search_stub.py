# A registry's v1 search endpoint for berth's tests: answers
# GET /v1/search?q=TERM&n=N with three fixed results and logs each request
# line to stderr. Listens on 127.0.0.1 on a port the kernel picks and prints
# it on stdout.
import http.server, json, sys, urllib.parse
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        u = urllib.parse.urlparse(self.path)
        q = urllib.parse.parse_qs(u.query)
        sys.stderr.write("GET %s\n" % self.path)
        if u.path == "/v2/":
            self.send_response(200); self.end_headers(); return
        if u.path != "/v1/search":
            self.send_response(404); self.end_headers(); return
        term = q.get("q", [""])[0]
        res = [
            {"name": "busybox", "description": "Busybox base image.", "star_count": 3200, "is_official": True, "is_automated": False},
            {"name": "someone/busybox-extra", "description": "A much longer description that goes well beyond forty-five characters for truncation", "star_count": 12, "is_official": False, "is_automated": True},
            {"name": "other/bb", "description": "", "star_count": 0, "is_official": False, "is_automated": False},
        ]
        body = json.dumps({"num_results": len(res), "query": term, "results": res}).encode()
        self.send_response(200); self.send_header("Content-Type", "application/json"); self.end_headers(); self.wfile.write(body)
    def log_message(self, *a): pass
srv = http.server.HTTPServer(("127.0.0.1", 0), H)
print(srv.server_address[1], flush=True)
srv.serve_forever()
