"""The two extra ASGI apps of the proxy benchmark, as uvicorn ``--factory`` targets.

``benchmarks/proxy.py`` runs each in its own ``python -m uvicorn --factory`` process with the
HTTP benchmark's server settings (the service itself is ``http_apps.oauthvault_app``).

* ``upstream_app``: the provider API every side talks to, raw ASGI (as little of its own
  time as possible in the figures): ``GET /api/items`` answers a small JSON body,
  ``GET /api/big/{mb}`` streams ``mb`` MiB in 64 KiB chunks with a ``Content-Length``.
* ``bare_proxy_app``: the floor of the API proxy: Starlette, one shared
  ``httpx.AsyncClient``, the request streamed to the upstream
  (``client.send(request, stream=True)``) and the answer streamed back
  (``StreamingResponse(aiter_raw())``); hop-by-hop headers dropped both ways, a fixed
  ``Authorization`` put in its place. No API key, no connection, no credential read, no
  path checks, no audit, no metrics: what any streaming reverse proxy of this shape does.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from contextlib import asynccontextmanager
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

UPSTREAM_ENV = "BENCH_PROXY_UPSTREAM"  # the upstream's API base URL (http://127.0.0.1:N/api)
BARE_PREFIX = "/proxy/"

MIB = 1_048_576
CHUNK = 65_536
# A small JSON answer, the shape of a list endpoint's first page.
ITEMS_BODY = (
    b'{"object":"list","data":['
    + b",".join(b'{"id":"item_%03d","object":"item","created":1700000000}' % i for i in range(4))
    + b'],"has_more":false}'
)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


async def upstream_app(scope: Scope, receive: Receive, send: Send) -> None:
    """The upstream, raw ASGI (see the module docstring)."""
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    assert scope["type"] == "http"
    path: str = scope["path"]
    if path == "/api/items":
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(ITEMS_BODY)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": ITEMS_BODY})
        return
    if path.startswith("/api/big/") and path[9:].isdigit():
        size = int(path[9:]) * MIB
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", b"application/octet-stream"),
                    (b"content-length", str(size).encode()),
                ],
            }
        )
        block = b"x" * CHUNK
        sent = 0
        while sent < size:
            sent += CHUNK
            await send({"type": "http.response.body", "body": block, "more_body": sent < size})
        return
    body = b'{"error":"not_found"}'
    await send(
        {
            "type": "http.response.start",
            "status": 404,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def upstream() -> Callable[[Scope, Receive, Send], Awaitable[None]]:
    """``--factory`` target of :func:`upstream_app`."""
    return upstream_app


_HOP_BY_HOP = frozenset(
    """connection keep-alive proxy-authenticate proxy-authorization proxy-connection te
    trailer transfer-encoding upgrade""".split()
)
_NOT_FORWARDED = _HOP_BY_HOP | {"host", "authorization", "content-length"}
_NOT_RETURNED = _HOP_BY_HOP | {"content-length"}
_CREDENTIAL = "Bearer sk-" + "B" * 40


def bare_proxy_app() -> Starlette:
    base = os.environ[UPSTREAM_ENV].rstrip("/")
    client = httpx.AsyncClient(timeout=httpx.Timeout(120.0, connect=10.0), trust_env=False)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        await client.aclose()

    async def proxy(request: Request) -> Response:
        tail = request.scope["raw_path"][len(BARE_PREFIX) - 1 :].decode("latin-1")
        query = request.scope.get("query_string", b"").decode("latin-1")
        headers = [
            (name, value) for name, value in request.headers.items() if name not in _NOT_FORWARDED
        ]
        headers.append(("authorization", _CREDENTIAL))
        has_body = request.method not in ("GET", "HEAD", "OPTIONS")
        outgoing = client.build_request(
            request.method,
            base + tail + ("?" + query if query else ""),
            headers=headers,
            content=request.stream() if has_body else None,
        )
        upstream = await client.send(outgoing, stream=True)
        returned = {
            name: value
            for name, value in upstream.headers.multi_items()
            if name.lower() not in _NOT_RETURNED
        }
        length = upstream.headers.get("content-length")
        if length is not None:
            returned["content-length"] = length
        return StreamingResponse(
            upstream.aiter_raw(),
            status_code=upstream.status_code,
            headers=returned,
            background=BackgroundTask(upstream.aclose),
        )

    return Starlette(
        routes=[
            Route(
                BARE_PREFIX + "{path:path}",
                proxy,
                methods=["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"],
            )
        ],
        lifespan=lifespan,
    )
