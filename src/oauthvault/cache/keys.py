"""The Redis key of a connection: ``oauth:token:{provider}:{workspace_id}:{actor_id}``.

Plain ids give exactly the seed design's key. ``%`` and ``:`` inside an id are
percent-escaped, so two different connections can never share a key.
"""

from __future__ import annotations

from oauthvault.models import TokenKey

__all__ = ["KEY_PREFIX", "cache_key", "pending_cache_key"]

KEY_PREFIX = "oauth:token:"
PENDING_PREFIX = "oauth:pending:"


def _escape(part: str) -> str:
    # "%" first, so an escaped ":" can never be mistaken for a literal "%3A" in an id.
    if "%" in part or ":" in part:
        return part.replace("%", "%25").replace(":", "%3A")
    return part


def cache_key(key: TokenKey) -> str:
    """The Redis key for connection ``key``."""
    return (
        f"{KEY_PREFIX}{_escape(key.provider)}:{_escape(key.workspace_id)}:{_escape(key.actor_id)}"
    )


def pending_cache_key(record_id: str) -> str:
    """The Redis key of a one-time record (OAuth state or connect link), by its hashed id."""
    return PENDING_PREFIX + record_id
