"""The HTTP edge: what is refused before any route runs.

A pure ASGI middleware (it sees the raw request, before Starlette decodes it):

- a query string of ``/v1`` that is not UTF-8 text (``%ff``, an encoded lone surrogate) is
  refused as ``422 invalid_input`` naming the argument, since Starlette would decode it with
  replacement characters and distinct byte strings would reach the same connection;
- every answer carries ``X-Content-Type-Options: nosniff``; those of ``/v1``, ``/oauth`` and
  ``/admin`` (tokens, link secrets, pages) ``Cache-Control: no-store`` unless they set
  their own; ``/docs`` and ``/redoc`` a Content-Security-Policy allowing only the
  package's own scripts (and the page's inline one, by its hash) and no framing.
"""

from __future__ import annotations

import base64
import hashlib
import re
from urllib.parse import unquote_to_bytes

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from oauthvault.service.problems import problem_response

__all__ = ["HttpEdge", "docs_policy", "undecodable_argument"]

_NO_STORE = ("/v1/", "/oauth/", "/admin")
_DOCS = ("/docs", "/redoc")
_INLINE_SCRIPT = re.compile(rb"<script>(.*?)</script>", re.DOTALL)


def docs_policy(page: bytes) -> str:
    """The Content-Security-Policy of a documentation page: its scripts come from this
    origin, or are the page's own inline ones (by hash); Swagger UI and ReDoc style
    elements as they render (inline styles); nothing may frame it."""
    hashes = " ".join(
        f"'sha256-{base64.b64encode(hashlib.sha256(script).digest()).decode()}'"
        for script in _INLINE_SCRIPT.findall(page)
    )
    return (
        f"default-src 'self'; script-src 'self' {hashes}; style-src 'self' 'unsafe-inline'; "
        "img-src 'self' data:; worker-src 'self' blob:; object-src 'none'; base-uri 'none'; "
        "form-action 'none'; frame-ancestors 'none'"
    )


def undecodable_argument(query: bytes) -> str | None:
    """The name of the first argument of ``query`` whose name or value is not UTF-8 once
    unescaped (``""`` when its name is not), else ``None``."""
    for pair in query.split(b"&"):
        name, _, value = pair.partition(b"=")
        try:
            decoded = unquote_to_bytes(name.replace(b"+", b" ")).decode("utf-8")
        except UnicodeDecodeError:
            return ""
        try:
            unquote_to_bytes(value.replace(b"+", b" ")).decode("utf-8")
        except UnicodeDecodeError:
            return decoded
    return None


class HttpEdge:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        if path in _DOCS:
            await self.app(scope, receive, _docs_sender(send))
            return
        send = _secured_sender(send, path.startswith(_NO_STORE))
        if path.startswith("/v1/"):
            argument = undecodable_argument(scope.get("query_string", b""))
            if argument is not None:
                response = (
                    problem_response(
                        422, "invalid_input", f"{argument} is not UTF-8 text", argument=argument
                    )
                    if argument
                    else problem_response(422, "invalid_request", "the query is not UTF-8 text")
                )
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


def _secured_sender(send: Send, no_store: bool) -> Send:
    async def sender(message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = MutableHeaders(scope=message)
            headers.setdefault("X-Content-Type-Options", "nosniff")
            if no_store:
                headers.setdefault("Cache-Control", "no-store")
        await send(message)

    return sender


def _docs_sender(send: Send) -> Send:
    """Holds a docs page back until its body is whole, to hash its inline script."""
    held: list[Message] = []

    async def sender(message: Message) -> None:
        held.append(message)
        if message["type"] != "http.response.body" or message.get("more_body", False):
            return
        page = b"".join(m.get("body", b"") for m in held if m["type"] == "http.response.body")
        for part in held:
            if part["type"] == "http.response.start":
                headers = MutableHeaders(scope=part)
                headers["X-Content-Type-Options"] = "nosniff"
                headers["X-Frame-Options"] = "DENY"
                headers["Content-Security-Policy"] = docs_policy(page)
            await send(part)
        held.clear()

    return sender
