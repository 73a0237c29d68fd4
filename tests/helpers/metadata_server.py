"""A tiny HTTP server on 127.0.0.1 that publishes discovery documents, from a thread.

It answers every GET with the answer set for its path, else the default one (``serve``), and
records the paths asked for. A document is JSON-encoded unless it is bytes. Example, a
server shaped like django-oauth-toolkit (no revocation in its OpenID document)::

    with MetadataServer() as server:
        server.serve(b"not found", 404)
        server.route(OPENID, {"issuer": server.url, ...})
        server.route(OAUTH, {"issuer": server.url, "revocation_endpoint": ..., ...})
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType

OPENID = "/.well-known/openid-configuration"
OAUTH = "/.well-known/oauth-authorization-server"


def _body(document: object) -> bytes:
    return document if isinstance(document, bytes) else json.dumps(document).encode()


class MetadataServer:
    """Serves the answers set by :meth:`serve` and :meth:`route` until closed."""

    def __init__(self) -> None:
        self.default: tuple[int, bytes] = (200, b"{}")
        self.routes: dict[str, tuple[int, bytes]] = {}
        self.paths: list[str] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                owner.paths.append(self.path)
                status, body = owner.routes.get(self.path, owner.default)
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:  # keep test output quiet
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def serve(self, document: object, status: int = 200) -> None:
        """Answer every path without a route of its own with ``document``; routes are
        cleared."""
        self.default = (status, _body(document))
        self.routes.clear()

    def route(self, path: str, document: object, status: int = 200) -> None:
        """Answer ``path`` with ``document``."""
        self.routes[path] = (status, _body(document))

    def start(self) -> MetadataServer:
        self._thread.start()
        return self

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self._thread.join(timeout=10)

    def __enter__(self) -> MetadataServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
