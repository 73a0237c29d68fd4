"""A tiny web app on 127.0.0.1 standing in for the SaaS product that embeds oauthvault, for
the browser flow tests: a settings page with a Connect button, and the page the flow returns
to."""

from __future__ import annotations

import html
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


class HostApp:
    """A tiny web app on 127.0.0.1 standing in for the SaaS product that embeds oauthvault.

    ``connect_pages`` maps a path to the connect link its Connect button points at; the test
    creates the link through the API and registers it before the browser asks for the page.
    ``bound_pages`` does the same for a host-bound link: a form POSTing its browser secret.
    ``/app/done`` is the return URL: it shows the outcome from the query string.
    """

    def __init__(self) -> None:
        self.connect_pages: dict[str, str] = {}
        #: path -> (connect link URL, browser secret) of a host-bound link: the page POSTs it.
        self.bound_pages: dict[str, tuple[str, str]] = {}
        self.requests: list[str] = []
        host = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                host.requests.append(self.path)
                status, body = host.render(self.path)
                payload = body.encode()
                self.send_response(status)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.return_prefix = f"{self.url}/app/"
        self.return_url = f"{self.url}/app/done"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def start(self) -> HostApp:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)

    def render(self, target: str) -> tuple[int, str]:
        parts = urlsplit(target)
        if parts.path in self.connect_pages:
            href = html.escape(self.connect_pages[parts.path], quote=True)
            return 200, page(
                "Integrations",
                f'<p>Let the app read your mail.</p><a id="connect" href="{href}">Connect</a>',
            )
        if parts.path in self.bound_pages:
            url, secret = (html.escape(value, quote=True) for value in self.bound_pages[parts.path])
            return 200, page(
                "Integrations",
                f'<form method="post" action="{url}">'
                f'<input type="hidden" name="browser_secret" value="{secret}">'
                '<button id="connect" type="submit">Connect</button></form>',
            )
        if parts.path == "/app/done":
            query = {key: values[0] for key, values in parse_qs(parts.query).items()}
            fields = {
                "status": query.get("oauthvault_status"),
                "provider": query.get("oauthvault_provider"),
                "error": query.get("oauthvault_error"),
            }
            rows = "".join(
                f'<p>{name}: <b id="{name}">{html.escape(value)}</b></p>'
                for name, value in fields.items()
                if value is not None
            )
            return 200, page("Connection result", rows)
        return 404, page("Not found", "")


def page(title: str, body: str) -> str:
    return (
        f'<!doctype html><html><head><meta charset="utf-8"><title>{title}</title>'
        "<style>body{font-family:sans-serif;margin:2em}"
        "#connect{display:inline-block;padding:.6em 1.2em;background:#1a73e8;color:#fff;"
        "border-radius:4px;text-decoration:none}</style></head>"
        f"<body><h1>{title}</h1>{body}</body></html>"
    )
