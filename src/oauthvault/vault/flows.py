"""The vault's storage operations as I/O-free generators (write-through, reads, deletes).

Each flow yields the steps of :mod:`oauthvault.vault.steps` and is sent their results;
:class:`~oauthvault.vault.OAuthTokenCache` performs them with blocking calls,
:class:`~oauthvault.vault.AsyncOAuthTokenCache` with ``await``. Write-through order, TTLs,
sealing and fallbacks are decided here, once.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from oauthvault.cache.keys import cache_key
from oauthvault.cache.versioned import TOMBSTONE_TTL, frame, tombstone
from oauthvault.crypto import sealing
from oauthvault.crypto.keyring import KeyRing
from oauthvault.crypto.sealing import (
    SealedRow,
    open_cache_record,
    open_response,
    seal_cache_record,
    seal_row,
)
from oauthvault.errors import DecryptionError
from oauthvault.models import (
    NO_PARAMS,
    ConnectionEvent,
    ConnectionStatus,
    TokenKey,
    TokenSet,
)
from oauthvault.providers.params import ConnectionParam
from oauthvault.vault.steps import (
    CommitLock,
    DeleteRow,
    DropCache,
    Emit,
    Flow,
    LockRow,
    ReadRow,
    RecordInvalidation,
    RowState,
    UpdateLocked,
    WriteCache,
    WriteRow,
)

__all__ = [
    "TOMBSTONE_TTL",
    "UNDECRYPTABLE_NOTE",
    "VaultCore",
    "cache_ttl",
    "mark_locked_undecryptable",
]

#: The ``last_error`` of a connection whose row does not decrypt.
UNDECRYPTABLE_NOTE = "the stored tokens do not decrypt with the configured keys"

logger = logging.getLogger("oauthvault.vault")


def cache_ttl(tokens: TokenSet, now: datetime, default: int) -> int | None:
    """Seconds to cache ``tokens``: until the access token expires, whole seconds rounded
    down so the entry never outlives the token; ``default`` without an expiry; ``None``
    (do not cache) when less than a second is left."""
    left = tokens.seconds_left(now)
    if left is None:
        return default
    return int(left) if left >= 1 else None


def _none_declared(provider: str) -> tuple[ConnectionParam, ...]:
    return ()


@dataclass(frozen=True, slots=True)
class VaultCore:
    """What the flows need to know: keys, time, whether there is a cache, and the
    connection parameters each provider declares (whose patterns every read checks)."""

    keyring: KeyRing = field(repr=False)
    clock: Callable[[], datetime]
    has_cache: bool
    default_cache_ttl: int
    declared_params: Callable[[str], tuple[ConnectionParam, ...]] = _none_declared

    def open_row(self, key: TokenKey, row: SealedRow) -> TokenSet:
        """The tokens of a stored row, its connection parameters checked.

        Raises:
            DecryptionError: the row does not decrypt (see
                :func:`~oauthvault.crypto.sealing.open_row`), or a connection parameter
                breaks its provider's pattern.
        """
        tokens = sealing.open_row(self.keyring, key, row)
        if tokens.params:
            self.check_params(key, tokens.params)
        return tokens

    def check_params(self, key: TokenKey, params: Mapping[str, str]) -> None:
        """Refuse stored connection parameters that break their provider's pattern: a
        row of an earlier version (values not bound to its tokens) changed by hand, say,
        whose ``instance_url`` would send the token to another host.

        Raises:
            DecryptionError: as for a row altered under its binding (the name is logged,
                never the value).
        """
        for param in self.declared_params(key.provider):
            value = params.get(param.name)
            if value is not None and not param.accepts(value):
                logger.error("connection parameter %s of %s breaks its pattern", param.name, key)
                raise DecryptionError

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
        """Write-through: commit the row, then cache it. Returns the row's new version.

        The vaults' ``store_tokens`` perform these same two halves inline
        (:meth:`cache_step` is the second's decision), without a generator between."""
        version: int = yield WriteRow(key, seal_row(self.keyring, key, tokens, response))
        yield from self.cache_tokens(key, tokens, self.clock(), version)
        return version

    def cache_step(
        self, key: TokenKey, tokens: TokenSet, now: datetime, version: int | None = None
    ) -> WriteCache | DropCache | None:
        """How freshly committed tokens go to the cache: a versioned write (never over a
        newer version) living as long as the access token, a drop when under a second is
        left, ``None`` without a cache. When Redis does not answer the step, its keys are
        logged as invalidations (:class:`RecordInvalidation`), so no older cached value
        can be served later. ``version``: the row's, when ``tokens`` do not carry it yet."""
        if not self.has_cache:
            return None
        name = cache_key(key)
        ttl = cache_ttl(tokens, now, self.default_cache_ttl)
        if ttl is None:
            return DropCache((name,))
        version = tokens.version if version is None else version
        sealed = seal_cache_record(self.keyring, key, tokens, version)
        return WriteCache(name, frame(version, sealed), ttl, version=version)

    def cache_tokens(
        self, key: TokenKey, tokens: TokenSet, now: datetime, version: int | None = None
    ) -> Flow:
        """Perform :meth:`cache_step`, and log an invalidation when Redis did not answer."""
        step = self.cache_step(key, tokens, now, version)
        if step is None:
            return None
        cached = yield step
        if not cached:
            yield RecordInvalidation(step.cache_keys)
        return None

    def open_record(self, key: TokenKey, sealed: bytes, version: int) -> TokenSet | None:
        """The tokens of a sealed cache record said to be at ``version``."""
        try:
            tokens = open_cache_record(self.keyring, key, sealed)
            if tokens.params:  # an earlier version cached what it read unchecked
                self.check_params(key, tokens.params)
        except DecryptionError:
            logger.warning("Cache entry for %s failed to decrypt; replacing it", key)
            return None
        if tokens.version != version:
            logger.warning("Cache entry for %s has inconsistent versions; replacing it", key)
            return None
        return tokens

    def get_from_database(self, key: TokenKey, name: str) -> Flow:
        """A read after a cache miss: the row, then warm the cache (versioned: a concurrent
        store's newer value is never overwritten by this older read; a value that did not
        decrypt, or was older than known, is replaced).

        The vaults read the cache themselves first (their fast path) and run this flow only
        on a miss.
        """
        row = yield ReadRow(key)
        if row is None:
            return None
        try:
            tokens = self.open_row(key, row)
        except DecryptionError:
            found: TokenSet | None = yield from self.undecryptable(key)
            return found
        if self.has_cache:
            ttl = cache_ttl(tokens, self.clock(), self.default_cache_ttl)
            if ttl is not None:
                # Versioned: never over a newer value (a concurrent store's).
                value = frame(tokens.version, seal_cache_record(self.keyring, key, tokens))
                yield WriteCache(name, value, ttl, version=tokens.version)
        return tokens

    def undecryptable(self, key: TokenKey) -> Flow:
        """A row read did not decrypt: under its lock, read it again; if it still does not,
        mark the connection ``undecryptable`` (once: its own status, an event) and raise
        :class:`DecryptionError`. Returns the tokens when it now decrypts (stored again
        meanwhile), ``None`` when it is gone."""
        state: RowState = yield LockRow(key)
        if state.row is None:
            yield CommitLock()
            return None
        try:
            tokens = self.open_row(key, state.row)
        except DecryptionError:
            if self.keyring.has_key(state.row.key_id):
                yield from mark_locked_undecryptable(key, state.status, self.clock())
            else:  # sealed with a key this process lacks (another may have it): not marked
                yield CommitLock()
            raise
        yield CommitLock()
        return tokens

    def restore(self, key: TokenKey, row: SealedRow) -> Flow:
        """Put back a row read before (a failed replacement), and cache it. Returns its new
        version."""
        version: int = yield WriteRow(key, row)
        tokens = dataclasses.replace(self.open_row(key, row), version=version)
        yield from self.cache_tokens(key, tokens, self.clock())
        return version

    def delete(self, key: TokenKey) -> Flow:
        """Delete the row, then leave a tombstone in the cache (so no delayed older write
        brings the connection back), or log an invalidation if Redis is away. Returns the
        deleted row's version, ``None`` when nothing was stored."""
        version: int | None = yield DeleteRow(key)
        if not self.has_cache:
            return version
        name = cache_key(key)
        if version is None:
            cached = yield DropCache((name,))
        else:
            cached = yield WriteCache(name, tombstone(version), TOMBSTONE_TTL, version=version)
        if not cached:
            yield RecordInvalidation((name,))
        return version

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
            tokens = self.open_row(key, row)
            return seal_row(self.keyring, key, tokens, open_response(self.keyring, key, row))
        except DecryptionError:
            return None


def mark_locked_undecryptable(key: TokenKey, status: str | None, now: datetime) -> Flow:
    """Mark the locked row ``undecryptable`` and commit; emit ``status_changed`` when that
    is news. Only for a row sealed with a key this process holds (so the row itself is
    wrong: altered or moved), never for one sealed with a key it lacks, which another
    process may hold during a rotation. The status clears when tokens are stored again."""
    if status == ConnectionStatus.UNDECRYPTABLE:
        yield CommitLock()
        return None
    yield UpdateLocked(ConnectionStatus.UNDECRYPTABLE, UNDECRYPTABLE_NOTE)
    yield CommitLock()
    logger.error("stored tokens of %s do not decrypt: marked undecryptable", key)
    yield Emit(
        ConnectionEvent(
            "status_changed",
            key.provider,
            key.workspace_id,
            key.actor_id,
            str(ConnectionStatus.UNDECRYPTABLE),
            None if status is None else str(status),
            UNDECRYPTABLE_NOTE,
            now,
        )
    )
    return None
