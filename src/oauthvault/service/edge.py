"""The HTTP edge: what is refused before any route runs.

A pure ASGI middleware (it sees the raw request, before Starlette decodes it):

- a query string of ``/v1`` (but the API proxy's, :data:`PROXY_PREFIX`, which is the
  provider's own and is checked by the proxy) that is not UTF-8 text (``%ff``, an encoded
  lone surrogate) is refused as ``422 invalid_input`` naming the argument, since Starlette
  would decode it with replacement characters and distinct byte strings would reach the
  same connection;
- a query string over :data:`MAX_QUERY` bytes is refused (``414 uri_too_long``), on every
  path; the server's own limit on a request's head (:data:`MAX_REQUEST_HEAD`, uvicorn's
  ``h11_max_incomplete_event_size``) is set far above it, so that such a request reaches
  this answer and not a plain-text 400;
- ``/v1`` authenticates the API key before reading the body (``401 unauthorized`` without
  reading it), and a body over :data:`MAX_API_BODY` is ``413 payload_too_large`` (at once
  when its Content-Length says so, else as soon as it is read past the limit); ``/oauth``
  bodies (form-post callbacks, the parameter form) are limited to :data:`MAX_FORM_BODY`;
  the API proxy's bodies stream through without a limit;
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

from starlette.datastructures import Headers, MutableHeaders
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from oauthvault.service.api import require_api_key
from oauthvault.service.problems import Problem, problem_response

__all__ = [
    "MAX_API_BODY",
    "MAX_FORM_BODY",
    "MAX_QUERY",
    "MAX_REQUEST_HEAD",
    "PROXY_PREFIX",
    "HttpEdge",
    "docs_policy",
    "undecodable_argument",
]

#: Bytes of a query string (three ids of 255 characters, each up to 4 bytes of UTF-8
#: percent-encoded, fit).
MAX_QUERY = 16_384
#: Bytes of a request body of ``/v1`` (a token is at most 16 KiB).
MAX_API_BODY = 1_048_576
#: Bytes of a request body of ``/oauth`` (a posted callback's id_token is a few kilobytes).
MAX_FORM_BODY = 65_536
#: The API proxy's requests: their bodies stream through unbounded, their queries are the
#: provider's own (checked by the proxy, byte for byte).
PROXY_PREFIX = "/v1/proxy/"
#: uvicorn's settings for the service: h11 buffers at most this much of an unfinished
#: request head (its default, 16 KiB, would answer a long query with a plain-text 400).
MAX_REQUEST_HEAD = 2 * 1_048_576

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
        refusal = await _refusal(scope, path)
        if refusal is not None:
            await refusal(scope, receive, send)
            return
        if path.startswith("/v1/") and not path.startswith(PROXY_PREFIX):
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
        limit = _body_limit(path)
        if limit is None:
            await self.app(scope, receive, send)
            return
        started = False

        async def sending(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, _limited(receive, limit), sending)
        except _BodyTooLarge:
            if started:
                raise
            await _too_large(limit)(scope, receive, send)


class _BodyTooLarge(Exception):
    """The body was read past its limit."""


def _body_limit(path: str) -> int | None:
    if path.startswith(PROXY_PREFIX):
        return None  # streamed to the provider, never held: its size is the provider's affair
    if path.startswith("/v1/"):
        return MAX_API_BODY
    if path.startswith("/oauth/"):
        return MAX_FORM_BODY
    return None


def _too_large(limit: int) -> Response:
    return problem_response(
        413, "payload_too_large", f"the request body is larger than {limit} bytes"
    )


async def _refusal(scope: Scope, path: str) -> Response | None:
    """The answer refusing the request before its body is read, if any."""
    if len(scope.get("query_string", b"")) > MAX_QUERY:
        return problem_response(
            414, "uri_too_long", f"the query string is longer than {MAX_QUERY} bytes"
        )
    limit = _body_limit(path)
    if limit is None:
        return None
    if path.startswith("/v1/"):
        try:
            await require_api_key(Request(scope))
        except Problem as refused:
            return problem_response(refused.status, refused.code, refused.detail)
    declared = Headers(scope=scope).get("content-length", "")
    if declared.isascii() and declared.isdigit() and int(declared) > limit:
        return _too_large(limit)
    return None


def _limited(receive: Receive, limit: int) -> Receive:
    read = 0

    async def receiving() -> Message:
        nonlocal read
        message = await receive()
        if message["type"] == "http.request":
            read += len(message.get("body", b""))
            if read > limit:
                raise _BodyTooLarge
        return message

    return receiving


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
