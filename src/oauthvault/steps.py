"""The vault's operations as I/O-free generators.

Each operation yields the I/O steps it needs (read the cache, write a row, …) and is
sent each step's result back, as ``httpx.Auth.auth_flow`` does. :class:`OAuthTokenCache`
drives them with blocking calls, :class:`AsyncOAuthTokenCache` with ``await``: the logic
(write-through order, TTLs, sealing, fallbacks) exists once.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, TypeAlias

from oauthvault.cache.keys import cache_key
from oauthvault.crypto.keyring import KeyRing
from oauthvault.errors import DecryptionError
from oauthvault.models import TokenKey, TokenSet
from oauthvault.records import (
    SealedRow,
    open_cache_record,
    open_row,
    seal_cache_record,
    seal_row,
)

__all__ = [
    "DeleteRow",
    "DropCache",
    "ReadRow",
    "RecordInvalidation",
    "SavePending",
    "Step",
    "TakePending",
    "VaultCore",
    "WriteCache",
    "WriteRow",
]

logger = logging.getLogger("oauthvault.vault")


@dataclass(frozen=True, slots=True)
class WriteCache:
    """Result: whether Redis took the value."""

    cache_key: str
    value: bytes = field(repr=False)
    ttl: int
    only_if_absent: bool


@dataclass(frozen=True, slots=True)
class DropCache:
    """Result: whether Redis confirmed the delete."""

    cache_key: str


@dataclass(frozen=True, slots=True)
class RecordInvalidation:
    """Remember in the database that Redis may hold a stale value for this key."""

    cache_key: str


@dataclass(frozen=True, slots=True)
class ReadRow:
    """Result: the :class:`SealedRow`, or ``None``."""

    key: TokenKey


@dataclass(frozen=True, slots=True)
class WriteRow:
    key: TokenKey
    row: SealedRow


@dataclass(frozen=True, slots=True)
class DeleteRow:
    """Result: whether a row was deleted."""

    key: TokenKey


@dataclass(frozen=True, slots=True)
class SavePending:
    """Keep a sealed one-time record until ``expires_at`` (Redis when up, else the database)."""

    record_id: str
    sealed: str = field(repr=False)
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class TakePending:
    """Result: the sealed record, deleted in the same step, or ``None``."""

    record_id: str


Step: TypeAlias = (
    WriteCache
    | DropCache
    | RecordInvalidation
    | ReadRow
    | WriteRow
    | DeleteRow
    | SavePending
    | TakePending
)
Flow: TypeAlias = Generator[Step, Any, Any]


def cache_ttl(tokens: TokenSet, now: datetime, default: int) -> int | None:
    """Seconds to cache ``tokens``: until the access token expires, whole seconds rounded
    down so the entry never outlives the token; ``default`` without an expiry; ``None``
    (do not cache) when less than a second is left."""
    left = tokens.seconds_left(now)
    if left is None:
        return default
    return int(left) if left >= 1 else None


def pending_ttl(expires_at: datetime, now: datetime) -> int:
    """Whole seconds a one-time record stays in Redis: at least one, rounded up."""
    return max(1, math.ceil((expires_at - now).total_seconds()))


@dataclass(frozen=True, slots=True)
class VaultCore:
    """What the flows need to know: keys, time, and whether there is a cache."""

    keyring: KeyRing = field(repr=False)
    clock: Callable[[], datetime]
    has_cache: bool
    default_cache_ttl: int

    def tokens_for_store(
        self,
        access_token: str,
        refresh_token: str | None,
        expires_in: int | None,
        scope: str | None,
    ) -> TokenSet:
        expires_at = None if expires_in is None else self.clock() + timedelta(seconds=expires_in)
        return TokenSet(access_token, refresh_token, expires_at, scope)

    def store(self, key: TokenKey, tokens: TokenSet) -> Flow:
        """Write-through: commit the row, then cache it; a cache write that fails is logged
        as an invalidation so no older cached value can be served later."""
        yield WriteRow(key, seal_row(self.keyring, key, tokens))
        if not self.has_cache:
            return None
        name = cache_key(key)
        ttl = cache_ttl(tokens, self.clock(), self.default_cache_ttl)
        if ttl is None:
            cached = yield DropCache(name)
        else:
            value = seal_cache_record(self.keyring, key, tokens)
            cached = yield WriteCache(name, value, ttl, only_if_absent=False)
        if not cached:
            yield RecordInvalidation(name)
        return None

    def open_cached(self, key: TokenKey, value: bytes) -> TokenSet | None:
        """The tokens in a cache value, or ``None`` when it does not decrypt (altered, moved
        from another key, or sealed with a retired key): such a value is never trusted."""
        try:
            return open_cache_record(self.keyring, key, value)
        except DecryptionError:
            logger.warning("Cache entry for %s failed to decrypt; replacing it", key)
            return None

    def get_from_database(self, key: TokenKey, name: str, *, replace_cached: bool) -> Flow:
        """A read after a cache miss: the row, then warm the cache (only if still absent,
        so a concurrent store's newer value is never overwritten by this older read;
        unconditionally when replacing an entry that did not decrypt).

        The vaults read the cache themselves first (their fast path) and run this flow only
        on a miss.
        """
        row = yield ReadRow(key)
        if row is None:
            return None
        tokens = open_row(self.keyring, key, row)
        if self.has_cache:
            ttl = cache_ttl(tokens, self.clock(), self.default_cache_ttl)
            if ttl is not None:
                value = seal_cache_record(self.keyring, key, tokens)
                yield WriteCache(name, value, ttl, only_if_absent=not replace_cached)
        return tokens

    def delete(self, key: TokenKey) -> Flow:
        """Delete the row, then the cache entry (or log an invalidation if Redis is away)."""
        deleted = yield DeleteRow(key)
        if self.has_cache:
            name = cache_key(key)
            dropped = yield DropCache(name)
            if not dropped:
                yield RecordInvalidation(name)
        return deleted

    def reseal(self, key: TokenKey, row: SealedRow) -> SealedRow | None:
        """The row sealed again with the newest key; ``None`` if it cannot be decrypted."""
        try:
            return seal_row(self.keyring, key, open_row(self.keyring, key, row))
        except DecryptionError:
            return None
