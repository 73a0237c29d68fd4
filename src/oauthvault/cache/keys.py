"""The Redis key of a connection: ``oauth:token:{provider}:{workspace_id}:{actor_id}``.

Plain ids give exactly the seed design's key. ``%`` and ``:`` inside an id are
percent-escaped, so two different connections can never share a key.
"""

from __future__ import annotations

from oauthvault.models import TokenKey

__all__ = ["KEY_PREFIX", "cache_key", "parse_cache_key", "pending_cache_key"]

KEY_PREFIX = "oauth:token:"
PENDING_PREFIX = "oauth:pending:"


def _escape(part: str) -> str:
    # "%" first, so an escaped ":" can never be mistaken for a literal "%3A" in an id.
    if "%" in part or ":" in part:
        return part.replace("%", "%25").replace(":", "%3A")
    return part


def _unescape(part: str) -> str:
    return part.replace("%3A", ":").replace("%25", "%")


def cache_key(key: TokenKey) -> str:
    """The Redis key for connection ``key``."""
    return (
        f"{KEY_PREFIX}{_escape(key.provider)}:{_escape(key.workspace_id)}:{_escape(key.actor_id)}"
    )


def parse_cache_key(text: str) -> TokenKey:
    """The connection a Redis key names (the inverse of :func:`cache_key`).

    Raises:
        ValueError: ``text`` is not a key made by :func:`cache_key`.
    """
    if not text.startswith(KEY_PREFIX):
        raise ValueError("not an oauthvault token key")
    parts = text[len(KEY_PREFIX) :].split(":")
    if len(parts) != 3:
        raise ValueError("not an oauthvault token key")
    provider, workspace_id, actor_id = (_unescape(part) for part in parts)
    return TokenKey(provider, workspace_id, actor_id)


def pending_cache_key(record_id: str) -> str:
    """The Redis key of a one-time record (OAuth state or connect link), by its hashed id."""
    return PENDING_PREFIX + record_id
