"""A minimal upstream app for deploy/compose.yaml: it lets you log in through sessiongate.

Python standard library only (runs in the stock python image, nothing to install).
GET /login shows a form; POST /login answers with the `sessiongate-create` header, which the
gateway turns into a session (cookies) before the response reaches the browser. Every other
path shows the identity headers the gateway sent. Listens on $PORT (default 3000).
"""

import html
import json
import os
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PASSWORD = os.environ.get("DEMO_PASSWORD", "demo")


def page(title, body):
    return (
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title></head><body>"
        f"<h1>{html.escape(title)}</h1>{body}</body></html>"
    ).encode()


class Handler(BaseHTTPRequestHandler):
    server_version = "demo-app"

    def send(self, status, body, headers=()):
        self.send_response(status)
        self.send_header("content-type", "text/html; charset=utf-8")
        self.send_header("cache-control", "no-store")
        self.send_header("content-length", str(len(body)))
        for name, value in headers:
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def login_form(self, status=200, error=""):
        note = f"<p>{html.escape(error)}</p>" if error else ""
        # Keep the gateway's ?next= (the page the browser wanted) through the form.
        action = "/login"
        query = urllib.parse.urlsplit(self.path).query
        if query:
            action += "?" + query
        form = (
            f"<form method='post' action='{html.escape(action)}'>"
            "<label>User <input name='user' autofocus></label> "
            "<label>Password <input name='password' type='password'></label> "
            "<button>Log in</button></form>"
            f"<p>Any user name; the password is <code>{html.escape(PASSWORD)}</code>.</p>"
        )
        self.send(status, page("Log in", note + form))

    def do_GET(self):
        path = urllib.parse.urlsplit(self.path).path
        if path == "/login":
            return self.login_form()
        rows = "".join(
            f"<tr><th>{name}</th><td>{html.escape(self.headers.get(name, '(none)'))}</td></tr>"
            for name in ("x-user-id", "x-session-handle", "x-jwt-payload", "x-request-id")
        )
        self.send(200, page("Logged in", f"<table>{rows}</table>"))

    def do_POST(self):
        path = urllib.parse.urlsplit(self.path)
        if path.path != "/login":
            return self.send(404, page("Not found", ""))
        length = min(int(self.headers.get("content-length") or 0), 64 * 1024)
        form = urllib.parse.parse_qs(self.rfile.read(length).decode("utf-8", "replace"))
        user = (form.get("user") or [""])[0].strip()
        if not user or (form.get("password") or [""])[0] != PASSWORD:
            return self.login_form(401, "Wrong user name or password.")
        # Back to where the gateway's login redirect came from (a relative path only).
        query = urllib.parse.parse_qs(path.query)
        target = (query.get("next") or ["/"])[0]
        if not target.startswith("/") or target.startswith("//"):
            target = "/"
        create = {"user_id": user, "jwt_payload": {"name": user}, "session_data": {}}
        self.send(
            303,
            b"",
            [("location", target), ("sessiongate-create", json.dumps(create))],
        )

    def log_message(self, fmt, *args):
        print("%s %s" % (self.address_string(), fmt % args), flush=True)


if __name__ == "__main__":
    port = int(os.environ.get("PORT", "3000"))
    ThreadingHTTPServer(("0.0.0.0", port), Handler).serve_forever()
