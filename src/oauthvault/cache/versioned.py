"""Versioned cache values: what a Redis entry holds, and the script that writes one.

A value is ``b"<version>:" + sealed record`` (the version also sits inside the sealed
record, where it is authenticated; the copy in front lets Redis compare without a key).
A **tombstone** is ``b"<version>:"`` with nothing after it: the connection was deleted at
that version. :data:`SET_IF_NEWER` replaces a value only with one at least as new, and a
tombstone only with something newer, atomically on the server, so a delayed or replayed
write never puts an older version back. No I/O here.
"""

from __future__ import annotations

__all__ = ["SET_IF_NEWER", "frame", "tombstone", "unframe"]

# KEYS[1]: the cache key. ARGV[1]: the version, ARGV[2]: the framed value, ARGV[3]: TTL s.
# Returns 1 when written, 0 when what Redis holds is newer (or a tombstone as new).
SET_IF_NEWER = """
local current = redis.call('GET', KEYS[1])
local version = tonumber(ARGV[1])
if current then
    local colon = string.find(current, ':', 1, true)
    local held = colon and tonumber(string.sub(current, 1, colon - 1))
    if held then
        if colon == #current then
            if version <= held then return 0 end
        elseif version < held then
            return 0
        end
    end
end
redis.call('SET', KEYS[1], ARGV[2], 'EX', tonumber(ARGV[3]))
return 1
"""


def frame(version: int, sealed: bytes) -> bytes:
    return b"%d:" % version + sealed


def tombstone(version: int) -> bytes:
    return b"%d:" % version


def unframe(value: bytes) -> tuple[int, bytes | None] | None:
    """``(version, sealed)`` of a cache value, ``sealed`` ``None`` for a tombstone; ``None``
    for a value in no known shape (written by an older version: read the database)."""
    head, colon, rest = value.partition(b":")
    if not colon or not head.isdigit() or len(head) > 19:
        return None
    return int(head), (rest or None)
