"""The HTTP edge: what is refused before any route runs.

A pure ASGI middleware (it sees the raw request, before Starlette decodes it):

- a query string of ``/v1`` that is not UTF-8 text (``%ff``, an encoded lone surrogate) is
  refused as ``422 invalid_input`` naming the argument, since Starlette would decode it with
  replacement characters and distinct byte strings would reach the same connection.
"""

from __future__ import annotations

from urllib.parse import unquote_to_bytes

from starlette.types import ASGIApp, Receive, Scope, Send

from oauthvault.service.problems import problem_response

__all__ = ["HttpEdge", "undecodable_argument"]


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
