"""An access log without query strings (they carry codes, states and link tokens).

Plain ASGI middleware: it only watches ``send`` for the status, so it costs next to nothing
per request (Starlette's ``@app.middleware("http")`` wraps every response in a stream).
"""

from __future__ import annotations

import logging

from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["AccessLogMiddleware"]

logger = logging.getLogger("oauthvault.access")


class AccessLogMiddleware:
    """Logs ``METHOD /path STATUS`` at INFO on ``oauthvault.access``."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not logger.isEnabledFor(logging.INFO):
            await self.app(scope, receive, send)
            return
        status = 500

        async def watch(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, watch)
        finally:
            logger.info("%s %s %s", scope["method"], scope["path"], status)
