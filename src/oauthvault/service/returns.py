"""Return URLs must match the configured allow-list: no open redirects.

A path with a dot segment (``.`` or ``..``, also percent-encoded as ``%2e``) or an encoded
slash or backslash (``%2f``, ``%5c``) is refused outright: a browser or the application
behind the allowed prefix may resolve it to a path outside the prefix
(``/settings/%2e%2e/%2e%2e/redirect``), and no honest return URL needs one.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import urlsplit

__all__ = ["ReturnUrlPolicy"]

_ENCODED_SEPARATOR = re.compile("%(?:2f|5c)", re.IGNORECASE)
_ENCODED_DOT = re.compile("%2e", re.IGNORECASE)


def _escapes_its_path(path: str) -> bool:
    """Whether ``path`` has a dot segment (RFC 3986 §5.2.4 would move it) or an encoded
    separator, plain or percent-encoded."""
    if _ENCODED_SEPARATOR.search(path):
        return True
    return any(segment in (".", "..") for segment in _ENCODED_DOT.sub(".", path).split("/"))


def _origin_and_path(url: str) -> tuple[str, str, int | None, str] | None:
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in ("https", "http") or not parts.hostname or parts.username:
        return None
    if parts.password is not None or "\\" in url or any(ord(c) < 0x21 for c in url):
        return None
    if _escapes_its_path(parts.path):
        return None
    return parts.scheme, parts.hostname.lower(), port, parts.path or "/"


def _escaped(text: str) -> str:
    return "".join("\\" + c if c in ".^$*+?()[]{}|\\" else c for c in text)


class ReturnUrlPolicy:
    """Allows a URL when scheme, host and port equal an allowed entry's, and its path starts
    at that entry's path (on a segment boundary). Entries are full URLs such as
    ``https://app.example.com/integrations/``."""

    def __init__(self, allowed: Iterable[str]) -> None:
        self._allowed = []
        for entry in allowed:
            parsed = _origin_and_path(entry)
            if parsed is None:
                raise ValueError("an allowed return URL must be an absolute http(s) URL")
            self._allowed.append(parsed)

    def pattern(self) -> str | None:
        """A regular expression (for the OpenAPI document) that only allowed URLs match:
        an entry's origin and path, then the rest on a segment boundary, without spaces,
        controls or backslashes. ``None`` when nothing is allowed."""
        if not self._allowed:
            return None
        # The characters themselves (see openapi.py): no space, control or backslash.
        rest = "[^\x00-\x20\\\\\x7f-\x9f]*"
        choices = []
        for scheme, host, port, path in self._allowed:
            prefix = _escaped(f"{scheme}://{host}{'' if port is None else f':{port}'}{path}")
            choices.append(prefix + rest if path.endswith("/") else f"{prefix}(?:[/?#]{rest})?")
        return "^(?:" + "|".join(choices) + ")$"

    def allows(self, url: object) -> bool:
        if not isinstance(url, str) or len(url) > 2048:
            return False
        parsed = _origin_and_path(url)
        if parsed is None:
            return False
        scheme, host, port, path = parsed
        for a_scheme, a_host, a_port, a_path in self._allowed:
            if (scheme, host, port) != (a_scheme, a_host, a_port):
                continue
            if path == a_path or path.startswith(a_path if a_path.endswith("/") else a_path + "/"):
                return True
        return False

    def allows_origin(self, origin: object) -> bool:
        """Whether ``origin`` (a request's ``Origin`` header: ``scheme://host[:port]``) is
        the origin of an allowed entry: the host app's pages."""
        if not isinstance(origin, str) or len(origin) > 300 or origin.count("/") != 2:
            return False
        parsed = _origin_and_path(origin + "/")
        if parsed is None:
            return False
        return any(parsed[:3] == allowed[:3] for allowed in self._allowed)
