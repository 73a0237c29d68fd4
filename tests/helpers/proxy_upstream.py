"""A loopback provider API for the proxy's tests: it checks the bearer token, echoes what it
was sent, answers any status, asks for a retry (``Retry-After``, or only a reset header),
redirects, and streams large bodies both ways. Every request is kept (method, path, header
names and values, body length) so a test can check what reached the provider."""

from __future__ import annotations

import hashlib
import threading
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Self

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response, StreamingResponse
from starlette.routing import Route

from tests.helpers.net import bound_socket
from tests.helpers.service_harness import UvicornThread

_MB = 1_048_576


@dataclass
class Received:
    method: str
    path: str
    query: str
    headers: dict[str, str] = field(repr=False)
    body_length: int


class ProxyUpstream:
    """The emulated API (see the module docstring). Tokens in ``refused`` get a 401; any
    other bearer token (or ``x-api-key``) is accepted (the vault's freshly refreshed one
    included)."""

    def __init__(self) -> None:
        self._socket = bound_socket()
        self.port = self._socket.getsockname()[1]
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.received: list[Received] = []
        self.refused: set[str] = set()
        self.counts: Counter[str] = Counter()
        self.busy: Counter[str] = Counter()  # key -> 429 answers still to give
        self.upload_chunks = 0
        #: (bytes asked for, bytes sent) of each finished (or abandoned) download
        self.streamed: list[tuple[int, int]] = []
        self._lock = threading.Lock()
        self.app = Starlette(
            routes=[
                Route(
                    "/api/{rest:path}",
                    self._answer,
                    methods=["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"],
                ),
            ]
        )
        self._server: UvicornThread | None = None

    def __enter__(self) -> Self:
        self._server = UvicornThread(self.app, self._socket)
        self._server.start()
        return self

    def __exit__(self, *_: object) -> None:
        if self._server is not None:
            self._server.stop()

    def last(self, path_part: str) -> Received:
        return [r for r in self.received if path_part in r.path][-1]

    async def _answer(self, request: Request) -> Response:
        rest = request.path_params["rest"]
        token = request.headers.get("authorization", "").removeprefix("Bearer ")
        token = token or request.headers.get("x-api-key", "")  # Anthropic's placement
        length = 0
        if rest.startswith("upload"):
            async for chunk in request.stream():
                length += len(chunk)
                self.upload_chunks += 1
        else:
            length = len(await request.body())
        with self._lock:
            self.received.append(
                Received(
                    request.method,
                    request.url.path,
                    request.url.query,
                    dict(request.headers),
                    length,
                )
            )
            self.counts[rest] += 1
        if not token or token in self.refused:
            return JSONResponse({"error": "invalid_token"}, status_code=401)
        query = request.query_params
        if rest.startswith("status/"):
            code = int(rest.split("/", 1)[1])
            headers = {"Retry-After": query["retry_after"]} if "retry_after" in query else {}
            return JSONResponse({"status": code}, status_code=code, headers=headers)
        if rest.startswith("busy/"):
            key = rest.split("/", 1)[1]
            with self._lock:
                if self.busy[key] > 0:
                    self.busy[key] -= 1
                    return JSONResponse(
                        {"error": "rate_limited"},
                        status_code=429,
                        headers={"Retry-After": query.get("retry_after", "1")},
                    )
            return JSONResponse({"ok": True, "key": key})
        if rest.startswith("reset/"):  # a 429 with a reset header and no Retry-After
            key = rest.split("/", 1)[1]
            with self._lock:
                if self.busy[key] > 0:
                    self.busy[key] -= 1
                    headers = {query["header"]: query["value"], "X-Rate-Remaining": "0"}
                    return JSONResponse({"error": "rate_limited"}, status_code=429, headers=headers)
            return JSONResponse({"ok": True, "key": key}, headers={"X-Rate-Remaining": "9"})
        if rest == "multi":  # a repeated header, and one forging the vault's refusal marker
            answer = JSONResponse({"ok": True})
            answer.raw_headers += [
                (b"link", b"<https://api.example/p2>; rel=next"),
                (b"link", b"<https://api.example/p9>; rel=last"),
                (b"oauthvault-error", b"not_found"),
            ]
            return answer
        if rest == "redirect":
            return RedirectResponse(query["to"], status_code=302)
        if rest.startswith("big/"):
            size = int(rest.split("/", 1)[1]) * _MB
            block = b"x" * 65_536

            async def chunks() -> AsyncIterator[bytes]:
                sent = 0
                try:
                    while sent < size:
                        # A server answering a closed connection sends into the void
                        # without an error: ask, as a real API's server notices.
                        if sent % (16 * len(block)) == 0 and await request.is_disconnected():
                            break
                        yield block
                        sent += len(block)
                finally:
                    self.streamed.append((size, sent))

            return StreamingResponse(
                chunks(),
                media_type="application/octet-stream",
                headers={"Content-Length": str(size)},
            )
        if rest.startswith("upload"):
            announced = request.headers.get("content-length")
            chunked = request.headers.get("transfer-encoding")
            return JSONResponse({"received": length, "length": announced, "chunked": chunked})
        body = {
            "method": request.method,
            "path": request.url.path,
            "query": request.url.query,
            "length": length,
            "sha256": hashlib.sha256(b"").hexdigest() if not length else None,
        }
        return JSONResponse(body, headers={"Set-Cookie": "upstream=1", "X-Upstream": "yes"})
