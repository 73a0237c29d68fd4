"""The read tiers of a vault: its local cache (L1), the Redis values it accepts, and the
counters of where reads were answered (no I/O here: the vaults do the reading).

:class:`ReadTiers` is a base of :class:`~oauthvault.vault.base.VaultBase`, so that the
hottest paths (a local-cache hit) stay one method call on the vault.
"""

from __future__ import annotations

import logging

from oauthvault.cache.keys import cache_key
from oauthvault.cache.local import LocalCache, local_key
from oauthvault.cache.redis_base import CacheBase
from oauthvault.cache.versioned import unframe
from oauthvault.cache.versions import VersionMemory
from oauthvault.config import Settings
from oauthvault.crypto.sealing import open_local_record, seal_local_record
from oauthvault.errors import DecryptionError
from oauthvault.models import TokenKey, TokenSet
from oauthvault.storage.feed import FeedState
from oauthvault.vault.flows import VaultCore, cache_ttl
from oauthvault.vault.results import CacheInfo, ReadCounters

__all__ = ["ReadTiers"]

logger = logging.getLogger("oauthvault.vault")


class ReadTiers:
    """What is served from where; the vault sets these attributes."""

    _settings: Settings
    _core: VaultCore
    _local: LocalCache | None
    _cache: CacheBase | None
    _memory: VersionMemory
    _reads: ReadCounters

    def cache_info(self) -> CacheInfo:
        """Where reads were answered (local cache, Redis, database) and the state of the
        local cache and its feed."""
        local, reads, feed = self._local, self._reads, self._feed_state()
        counters = self._memory.counters
        return CacheInfo(
            local_enabled=local is not None,
            local_live=local is not None and local.live,
            local_entries=0 if local is None else len(local),
            local_hits=counters.hits,
            local_misses=counters.misses,
            redis_hits=reads.redis_hits,
            redis_misses=reads.redis_misses,
            database_reads=reads.database_reads,
            refused=counters.refused,
            changes_heard=counters.changes_heard,
            local_suspensions=counters.suspensions if local is not None else 0,
            feed_reconnects=0 if feed is None else feed.reconnects,
            feed_lag=None if feed is None else feed.last_lag,
            feed_unsupported=False if feed is None else feed.unsupported,
            feed_live=False if feed is None else feed.live,
        )

    def _feed_state(self) -> FeedState | None:
        return None

    def _redis_trusted(self) -> bool:
        """Whether a Redis value this process knows nothing newer than may be served as it
        is: only while a change feed is live (else the database confirms it)."""
        feed = self._feed_state()
        return feed is not None and feed.live

    def _new_tiers(self) -> tuple[LocalCache | None, VersionMemory]:
        """A new local cache (if on) and the version memory, which runs whatever the
        local cache setting (the local cache holds it when on)."""
        settings = self._settings
        if not settings.local_cache:
            return None, VersionMemory(10 * settings.local_cache_size)
        local = LocalCache(settings.local_cache_size, settings.local_cache_max_age)
        return local, local.versions

    def _heard(self, key: TokenKey, version: int | None, *, deleted: bool = False) -> None:
        """This process committed ``version`` of ``key`` (its own write: the feed tells
        the others, and tells this process again a moment later)."""
        if not version:
            return
        if self._local is not None:
            self._local.heard(local_key(key), version, deleted=deleted)
        else:
            self._memory.heard(local_key(key), version, deleted=deleted)

    def _local_hit(self, provider: str, workspace_id: str, actor_id: str) -> TokenSet | None:
        """The tokens of this process's local record of the connection, if it holds one.
        The ids are not validated: only validated ones are ever kept, so others miss."""
        assert self._local is not None  # noqa: S101 - callers check
        if type(provider) is not str or type(workspace_id) is not str or type(actor_id) is not str:
            return None  # a str subclass may compare or hash as it likes: not on this path
        ids = (provider, workspace_id, actor_id)
        record = self._local.get(ids)
        if record is None:
            return None
        try:
            return open_local_record(self._core.keyring, ids, record)
        except DecryptionError:  # its key left the ring (rotation): read again
            return None

    def _keep_local(self, key: TokenKey, tokens: TokenSet, ticket: int | None) -> None:
        local = self._local
        if local is None or ticket is None or not tokens.version:
            return
        ttl = cache_ttl(tokens, self._core.clock(), self._core.default_cache_ttl)
        if ttl is None:
            return
        ids = local_key(key)
        local.put(ids, seal_local_record(self._core.keyring, ids, tokens), ttl, ticket)

    def _from_redis(self, key: TokenKey, cached: bytes) -> TokenSet | None:
        """The tokens of a Redis value, unless it is a tombstone, malformed, or older than
        a version this process has heard of (then the database decides and the entry is
        replaced). A value that is not this connection's (copied from another, whatever
        version it claims) is replaced by the database read that follows. Not yet counted
        or kept: the vault confirms it first when no feed is live
        (:meth:`_redis_trusted`), then calls :meth:`_served_from_redis`."""
        parsed = unframe(cached)
        if parsed is None:
            return None
        version, sealed = parsed
        if sealed is None:  # a tombstone
            return None
        if self._memory.is_outdated(local_key(key), version):
            self._memory.counters.refused += 1
            logger.info("cache entry for %s is older than a change heard of; re-reading", key)
            return None
        tokens = self._core.open_record(key, sealed, version)
        if tokens is None and self._cache is not None:
            self._cache.distrust(cache_key(key), cached)
        return tokens

    def _served_from_redis(self, key: TokenKey, tokens: TokenSet, ticket: int | None) -> None:
        self._reads.redis_hits += 1
        self._keep_local(key, tokens, ticket)

    def _outdated_by_row(self, key: TokenKey, tokens: TokenSet, row_version: int | None) -> bool:
        """Whether the row (its version, ``None``: gone) is newer than a Redis value; then
        the value is refused, and the row's version remembered."""
        if row_version is not None and row_version <= tokens.version:
            return False
        self._memory.counters.refused += 1
        self._heard(key, row_version)
        logger.info("cache entry for %s is older than the database's row; re-reading", key)
        return True
