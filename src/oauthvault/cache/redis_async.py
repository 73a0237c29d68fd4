"""Redis in front of the database, degrading to the database when Redis fails.

``AsyncRedisTokenCache`` in :mod:`oauthvault.cache.redis_async` is the hand-written
source; ``RedisTokenCache`` in :mod:`oauthvault.cache.redis` is generated from it by
``scripts/async_to_sync.py``. What they share without I/O is in
:mod:`oauthvault.cache.redis_base`.

The first call asks the server whether it is a node of a Redis Cluster (``INFO cluster``),
and so does the first call after an outage or a cluster's answer to a plain client; a
cluster is then used through redis-py's cluster client, which sends each key to its slot's
master. Nothing blocks while the cache is built.
"""

from __future__ import annotations

import logging
from typing import Any, Protocol, cast

import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster as AsyncRedisCluster
from redis.asyncio.retry import Retry as AsyncRetry
from redis.backoff import NoBackoff

from oauthvault.cache.breaker import CircuitBreaker, Decision
from oauthvault.cache.redis_base import (
    DEFAULT_TIMEOUT,
    FLUSH_BATCH,
    REDIS_ERRORS,
    RETRIED_ERRORS,
    CacheBase,
    cluster_enabled,
)
from oauthvault.cache.versioned import SET_IF_NEWER
from oauthvault.errors import VaultError

__all__ = ["AsyncInvalidationLog", "AsyncRedisTokenCache"]

logger = logging.getLogger("oauthvault.cache")


class AsyncInvalidationLog(Protocol):
    """Where cache keys that Redis may hold stale values for are remembered (the DB)."""

    async def pending_invalidations(self, limit: int) -> list[str]: ...
    async def clear_invalidations(self, cache_keys: list[str]) -> None: ...


class AsyncRedisTokenCache(CacheBase):
    """Sealed token records in Redis, keyed by :func:`oauthvault.cache.cache_key`."""

    def __init__(
        self,
        redis_url: str,
        invalidations: AsyncInvalidationLog,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        breaker: CircuitBreaker | None = None,
    ) -> None:
        super().__init__(redis_url, breaker, timeout)
        self._invalidations = invalidations
        retry = AsyncRetry(NoBackoff(), 1, supported_errors=RETRIED_ERRORS)
        self._options: dict[str, Any] = self._client_options(retry)
        self._client: Any = aioredis.Redis.from_url(redis_url, **self._options)
        self._set_if_newer = self._client.register_script(SET_IF_NEWER)

    async def _follow_mode(self) -> None:
        """Ask the server whether it is a cluster node, unless known, and use redis-py's
        cluster client if so: keys then go to their slots' masters."""
        if self._cluster is not None:
            return
        cluster = cluster_enabled(await self._client.info("cluster"))
        if cluster and not isinstance(self._client, AsyncRedisCluster):
            old = self._client
            self._client = AsyncRedisCluster.from_url(self._redis_url, **self._options)
            self._set_if_newer = self._client.register_script(SET_IF_NEWER)
            await old.aclose()
            logger.info("Redis at %s is a cluster: using the cluster client", self._location)
        self._cluster = cluster

    async def _ready(self) -> bool:
        """Whether Redis may be used now: the breaker is closed (and the server's mode is
        known), or its probe after an outage finds Redis back (the invalidation log is
        then replayed first)."""
        decision = self._breaker.decide()
        if decision is Decision.OPEN:
            return False
        try:
            await self._follow_mode()
            if decision is Decision.CLOSED:
                return True
            await self._client.ping()
            while keys := await self._invalidations.pending_invalidations(FLUSH_BATCH):
                await self._client.delete(*keys)
                await self._invalidations.clear_invalidations(keys)
        except REDIS_ERRORS as error:
            self._failed(error)
            return False
        except VaultError:
            # The database is down too: stay off Redis until the log can be replayed.
            self._breaker.record_failure()
            return False
        self._recovered()
        return True

    async def get(self, cache_key: str) -> bytes | None:
        """The cached value, or ``None`` on a miss or when Redis is unavailable."""
        # The hot path: one check, then the GET (the mode is known after the first call).
        if (self._cluster is None or not self._breaker.is_closed) and not await self._ready():
            return None
        try:
            value = cast("bytes | None", await self._client.get(cache_key))
        except REDIS_ERRORS as error:
            self._failed(error)
            return None
        return value

    async def set(self, cache_key: str, value: bytes, ttl: int) -> bool:
        """Store ``value`` for ``ttl`` seconds. False if Redis is unavailable."""
        if not await self._ready():
            return False
        try:
            await self._client.set(cache_key, value, ex=ttl)
        except REDIS_ERRORS as error:
            self._failed(error)
            return False
        return True

    async def write_versioned(self, cache_key: str, version: int, value: bytes, ttl: int) -> bool:
        """Store a framed value (:mod:`oauthvault.cache.versioned`) unless Redis holds a
        newer one (a value :meth:`distrust` was told of is replaced); True when Redis
        answered (whether or not it kept the value)."""
        if not await self._ready():
            return False
        try:
            args = self._versioned_args(cache_key, version, value, ttl)
            await self._set_if_newer(keys=[cache_key], args=args)
        except REDIS_ERRORS as error:
            self._failed(error)
            return False
        return True

    async def check(self) -> bool:
        """Whether Redis answers now (a PING; after an outage, the invalidation log is
        replayed first, as before any use)."""
        if not await self._ready():
            return False
        try:
            await self._client.ping()
        except REDIS_ERRORS as error:
            self._failed(error)
            return False
        return True

    async def take(self, cache_key: str) -> bytes | None:
        """Get and delete in one atomic command (GETDEL); ``None`` if absent or unavailable."""
        if not await self._ready():
            return None
        try:
            return cast("bytes | None", await self._client.getdel(cache_key))
        except REDIS_ERRORS as error:
            self._failed(error)
            return None

    async def delete(self, *cache_keys: str) -> bool:
        """Delete keys. False if Redis is unavailable."""
        if not await self._ready():
            return False
        try:
            await self._client.delete(*cache_keys)
        except REDIS_ERRORS as error:
            self._failed(error)
            return False
        return True

    async def aclose(self) -> None:
        await self._client.aclose()
