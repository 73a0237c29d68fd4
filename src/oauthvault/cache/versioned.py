"""Versioned cache values: what a Redis entry holds, and the script that writes one.

A value is ``b"<version>:" + sealed record`` (the version also sits inside the sealed
record, where it is authenticated; the copy in front lets Redis compare without a key).
A **tombstone** is ``b"<version>:"`` with nothing after it: the connection was deleted at
that version, and it lives :data:`TOMBSTONE_TTL` seconds. :data:`SET_IF_NEWER` replaces a
value only with one at least as new, and a tombstone only with something newer, atomically
on the server, so a delayed or replayed write never puts an older version back.

What the vault never writes does not hold a newer one off: a value without a TTL, a
tombstone living longer than :data:`TOMBSTONE_TTL`, or the exact value a read found not to
be this connection's (copied from another, passed as ``replacing``) is replaced whatever
version it claims. No I/O here.
"""

from __future__ import annotations

__all__ = [
    "SET_IF_NEWER",
    "TOMBSTONE_TTL",
    "frame",
    "set_if_newer_args",
    "tombstone",
    "unframe",
]

#: Seconds a deleted connection's tombstone stays in Redis: longer than any write to it
#: can be delayed (a Redis call times out in a fraction of a second).
TOMBSTONE_TTL = 300

# KEYS[1]: the cache key. ARGV[1]: the version, ARGV[2]: the framed value, ARGV[3]: TTL s,
# ARGV[4]: a value found foreign (replaced whatever its version; "" for none), ARGV[5]: the
# longest TTL a tombstone is written with, in ms.
# Returns 1 when written, 0 when what Redis holds is newer (or a tombstone as new).
SET_IF_NEWER = """
local current = redis.call('GET', KEYS[1])
local version = tonumber(ARGV[1])
if current and current ~= ARGV[4] then
    local colon = string.find(current, ':', 1, true)
    local held = colon and tonumber(string.sub(current, 1, colon - 1))
    local left = redis.call('PTTL', KEYS[1])
    if held and left >= 0 then
        if colon == #current then
            if left <= tonumber(ARGV[5]) and version <= held then return 0 end
        elseif version < held then
            return 0
        end
    end
end
redis.call('SET', KEYS[1], ARGV[2], 'EX', tonumber(ARGV[3]))
return 1
"""


def set_if_newer_args(
    version: int, value: bytes, ttl: int, replacing: bytes = b""
) -> list[int | bytes]:
    """The arguments of :data:`SET_IF_NEWER`."""
    return [version, value, ttl, replacing, TOMBSTONE_TTL * 1000]


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
