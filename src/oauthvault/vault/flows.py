"""The vault's storage operations as I/O-free generators (write-through, reads, deletes).

Each flow yields the steps of :mod:`oauthvault.vault.steps` and is sent their results;
:class:`~oauthvault.vault.OAuthTokenCache` performs them with blocking calls,
:class:`~oauthvault.vault.AsyncOAuthTokenCache` with ``await``. Write-through order, TTLs,
sealing and fallbacks are decided here, once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from oauthvault.cache.keys import cache_key
from oauthvault.crypto.keyring import KeyRing
from oauthvault.crypto.sealing import (
    SealedRow,
    open_cache_record,
    open_response,
    open_row,
    seal_cache_record,
    seal_row,
)
from oauthvault.errors import DecryptionError
from oauthvault.models import NO_PARAMS, TokenKey, TokenSet
from oauthvault.vault.steps import (
    DeleteRow,
    DropCache,
    Flow,
    ReadRow,
    RecordInvalidation,
    WriteCache,
    WriteRow,
)

__all__ = ["VaultCore", "cache_ttl"]

logger = logging.getLogger("oauthvault.vault")


def cache_ttl(tokens: TokenSet, now: datetime, default: int) -> int | None:
    """Seconds to cache ``tokens``: until the access token expires, whole seconds rounded
    down so the entry never outlives the token; ``default`` without an expiry; ``None``
    (do not cache) when less than a second is left."""
    left = tokens.seconds_left(now)
    if left is None:
        return default
    return int(left) if left >= 1 else None


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
        params: Mapping[str, str] = NO_PARAMS,
    ) -> TokenSet:
        now = self.clock()
        expires_at = None if expires_in is None else now + timedelta(seconds=expires_in)
        return TokenSet(access_token, refresh_token, expires_at, scope, params, issued_at=now)

    def store(
        self, key: TokenKey, tokens: TokenSet, response: Mapping[str, Any] | None = None
    ) -> Flow:
        """Write-through: commit the row, then cache it."""
        yield WriteRow(key, seal_row(self.keyring, key, tokens, response))
        yield from self.cache_tokens(key, tokens, self.clock())

    def cache_tokens(self, key: TokenKey, tokens: TokenSet, now: datetime) -> Flow:
        """Put freshly committed tokens in the cache; a cache write that fails is logged as
        an invalidation, so no older cached value can be served later."""
        if not self.has_cache:
            return None
        name = cache_key(key)
        ttl = cache_ttl(tokens, now, self.default_cache_ttl)
        if ttl is None:
            cached = yield DropCache((name,))
        else:
            value = seal_cache_record(self.keyring, key, tokens)
            cached = yield WriteCache(name, value, ttl)
        if not cached:
            yield RecordInvalidation((name,))
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

    def restore(self, key: TokenKey, row: SealedRow) -> Flow:
        """Put back a row read before (a failed replacement), and drop its cache entry."""
        yield WriteRow(key, row)
        yield from self.drop_cached((key,))

    def delete(self, key: TokenKey) -> Flow:
        """Delete the row, then the cache entry (or log an invalidation if Redis is away)."""
        deleted = yield DeleteRow(key)
        yield from self.drop_cached((key,))
        return deleted

    def drop_cached(self, keys: Sequence[TokenKey]) -> Flow:
        """Drop the cache entries of ``keys``; when Redis cannot confirm, log them as
        invalidations to replay before Redis is trusted again."""
        if not self.has_cache or not keys:
            return None
        names = tuple(cache_key(key) for key in keys)
        dropped = yield DropCache(names)
        if not dropped:
            yield RecordInvalidation(names)
        return None

    def reseal(self, key: TokenKey, row: SealedRow) -> SealedRow | None:
        """The row sealed again with the newest key; ``None`` if it cannot be decrypted."""
        try:
            tokens = open_row(self.keyring, key, row)
            return seal_row(self.keyring, key, tokens, open_response(self.keyring, key, row))
        except DecryptionError:
            return None
