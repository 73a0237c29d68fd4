"""Reading a posted HTML form (``application/x-www-form-urlencoded``) with a size limit, for
the browser routes and the admin console."""

from __future__ import annotations

from urllib.parse import parse_qsl

from starlette.requests import Request

__all__ = ["FormError", "read_form"]


class FormError(Exception):
    """The body is not a readable form; ``.status`` is the status to answer with."""

    def __init__(self, status: int) -> None:
        self.status = status
        super().__init__(status)


async def read_form(request: Request, limit: int) -> dict[str, str]:
    """The posted form's fields, the body at most ``limit`` bytes.

    Raises:
        FormError: 415 (not a form), 413 (too large) or 422 (not UTF-8 or unreadable).
    """
    if "application/x-www-form-urlencoded" not in request.headers.get("content-type", ""):
        raise FormError(415)
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise FormError(413)
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise FormError(413)
    try:
        return dict(parse_qsl(body.decode("utf-8"), keep_blank_values=True))
    except (UnicodeDecodeError, ValueError):
        raise FormError(422) from None
