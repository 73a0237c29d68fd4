"""Redis in front of the database, degrading to the database when Redis fails.

No Redis error leaves this module: each one is logged (once per outage), opens the
circuit breaker, and the call reports a miss or a failed write so the vault falls back
to the database. Writes that could not reach Redis are recorded in the database's
invalidation log; before Redis is used again those keys are deleted from it, so a value
written during an outage is never shadowed by an older cached one.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, Protocol, cast

import redis
import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster as AsyncRedisCluster
from redis.asyncio.retry import Retry as AsyncRetry
from redis.backoff import NoBackoff
from redis.cluster import RedisCluster
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisClusterException, RedisError, ResponseError
from redis.retry import Retry

from oauthvault.cache.breaker import CircuitBreaker, Decision
from oauthvault.cache.versioned import SET_IF_NEWER
from oauthvault.errors import VaultError

__all__ = [
    "AsyncInvalidationLog",
    "AsyncRedisTokenCache",
    "InvalidationLog",
    "RedisTokenCache",
]

logger = logging.getLogger("oauthvault.cache")

DEFAULT_TIMEOUT = 0.25
_FLUSH_BATCH = 500


class InvalidationLog(Protocol):
    """Where cache keys that Redis may hold stale values for are remembered (the DB)."""

    def pending_invalidations(self, limit: int) -> list[str]: ...
    def clear_invalidations(self, cache_keys: list[str]) -> None: ...


class AsyncInvalidationLog(Protocol):
    async def pending_invalidations(self, limit: int) -> list[str]: ...
    async def clear_invalidations(self, cache_keys: list[str]) -> None: ...


#: Every error a Redis call can raise: the cluster client's own exception (no cluster node
#: reachable, a bad topology) is not a RedisError.
REDIS_ERRORS = (RedisError, RedisClusterException)

# What a cluster node answers a client that does not follow slots.
_CLUSTER_ANSWERS = ("MOVED", "ASK", "CLUSTERDOWN", "CROSSSLOT")


def _cluster_enabled(info: Mapping[str, object]) -> bool:
    return str(info.get("cluster_enabled", "0")) == "1"


# One quick retry on a dropped connection (a pooled socket from before a Redis restart),
# none on timeouts: a hung Redis must cost one timeout, then the breaker takes over.
_RETRIED_ERRORS = (RedisConnectionError,)


class _CacheBase:
    """State and logging shared by the sync and async caches; no I/O here."""

    def __init__(self, redis_url: str, breaker: CircuitBreaker | None) -> None:
        self._breaker = breaker or CircuitBreaker()
        self._location = redis_location(redis_url)
        self._outage_reported = False
        self._redis_url = redis_url
        #: Whether Redis is a cluster, once a server said so (None: not asked yet).
        self._cluster: bool | None = None

    @property
    def is_cluster(self) -> bool:
        """True when ``REDIS_URL`` points at a node of a Redis Cluster."""
        return bool(self._cluster)

    @property
    def is_available(self) -> bool:
        """True while the breaker is closed (Redis answered the last call)."""
        return self._breaker.is_closed

    def _failed(self, error: Exception) -> None:
        if isinstance(error, ResponseError) and str(error).startswith(_CLUSTER_ANSWERS):
            self._cluster = None  # a cluster's answer to a plain client: ask again
        self._breaker.record_failure()
        if not self._outage_reported:
            self._outage_reported = True
            logger.warning(
                "Redis at %s unavailable (%s); serving from the database until it is back",
                self._location,
                type(error).__name__,
            )

    def _recovered(self) -> None:
        self._breaker.record_success()
        if self._outage_reported:
            self._outage_reported = False
            logger.info("Redis at %s is available again", self._location)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(location={self._location!r})"


def redis_location(redis_url: str) -> str:
    """host:port/db of a Redis URL, without user or password."""
    from urllib.parse import urlsplit

    parts = urlsplit(redis_url)
    return f"{parts.hostname or 'localhost'}:{parts.port or 6379}{parts.path or ''}"


class RedisTokenCache(_CacheBase):
    """Sealed token records in Redis, keyed by :func:`oauthvault.cache.cache_key`."""

    def __init__(
        self,
        redis_url: str,
        invalidations: InvalidationLog,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        breaker: CircuitBreaker | None = None,
    ) -> None:
        super().__init__(redis_url, breaker)
        self._invalidations = invalidations
        self._options: dict[str, Any] = {
            "retry": Retry(NoBackoff(), 1, supported_errors=_RETRIED_ERRORS),
            "socket_timeout": timeout,
            "socket_connect_timeout": timeout,
            "decode_responses": False,
        }
        self._client: Any = redis.Redis.from_url(redis_url, **self._options)
        self._set_if_newer = self._client.register_script(SET_IF_NEWER)
        self._follow_mode()

    def _follow_mode(self) -> None:
        """Ask the server whether it is a cluster node (once it answers) and use redis-py's
        cluster client if so: keys then go to their slots' masters."""
        if self._cluster is not None:
            return
        try:
            cluster = _cluster_enabled(self._client.info("cluster"))
            if cluster and not isinstance(self._client, RedisCluster):
                client = RedisCluster.from_url(self._redis_url, **self._options)
                self._client.close()
                self._client = client
                self._set_if_newer = client.register_script(SET_IF_NEWER)
                logger.info("Redis at %s is a cluster: using the cluster client", self._location)
        except REDIS_ERRORS as error:
            self._failed(error)
            return
        self._cluster = cluster

    def _ready(self) -> bool:
        decision = self._breaker.decide()
        if decision is Decision.CLOSED:
            return True
        if decision is Decision.OPEN:
            return False
        try:
            self._follow_mode()
            self._client.ping()
            while keys := self._invalidations.pending_invalidations(_FLUSH_BATCH):
                self._client.delete(*keys)
                self._invalidations.clear_invalidations(keys)
        except REDIS_ERRORS as error:
            self._failed(error)
            return False
        except VaultError:
            # The database is down too: stay off Redis until the log can be replayed.
            self._breaker.record_failure()
            return False
        self._recovered()
        return True

    def get(self, cache_key: str) -> bytes | None:
        """The cached value, or ``None`` on a miss or when Redis is unavailable."""
        if not self._breaker.is_closed and not self._ready():
            return None
        try:
            value: bytes | None = self._client.get(cache_key)
        except REDIS_ERRORS as error:
            self._failed(error)
            return None
        return value

    def set(self, cache_key: str, value: bytes, ttl: int) -> bool:
        """Store ``value`` for ``ttl`` seconds. False if Redis is unavailable."""
        if not self._ready():
            return False
        try:
            self._client.set(cache_key, value, ex=ttl)
        except REDIS_ERRORS as error:
            self._failed(error)
            return False
        return True

    def write_versioned(self, cache_key: str, version: int, value: bytes, ttl: int) -> bool:
        """Store a framed value (:mod:`oauthvault.cache.versioned`) unless Redis holds a
        newer one; True when Redis answered (whether or not it kept the value)."""
        if not self._ready():
            return False
        try:
            self._set_if_newer(keys=[cache_key], args=[version, value, ttl])
        except REDIS_ERRORS as error:
            self._failed(error)
            return False
        return True

    def check(self) -> bool:
        """Whether Redis answers now (a PING; after an outage, the invalidation log is
        replayed first, as before any use)."""
        if not self._ready():
            return False
        try:
            self._client.ping()
        except REDIS_ERRORS as error:
            self._failed(error)
            return False
        return True

    def take(self, cache_key: str) -> bytes | None:
        """Get and delete in one atomic command (GETDEL); ``None`` if absent or unavailable."""
        if not self._ready():
            return None
        try:
            return cast("bytes | None", self._client.getdel(cache_key))
        except REDIS_ERRORS as error:
            self._failed(error)
            return None

    def delete(self, *cache_keys: str) -> bool:
        """Delete keys. False if Redis is unavailable."""
        if not self._ready():
            return False
        try:
            self._client.delete(*cache_keys)
        except REDIS_ERRORS as error:
            self._failed(error)
            return False
        return True

    def close(self) -> None:
        self._client.close()


class AsyncRedisTokenCache(_CacheBase):
    """The asyncio twin of :class:`RedisTokenCache`."""

    def __init__(
        self,
        redis_url: str,
        invalidations: AsyncInvalidationLog,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        breaker: CircuitBreaker | None = None,
    ) -> None:
        super().__init__(redis_url, breaker)
        self._invalidations = invalidations
        self._options: dict[str, Any] = {
            "retry": AsyncRetry(NoBackoff(), 1, supported_errors=_RETRIED_ERRORS),
            "socket_timeout": timeout,
            "socket_connect_timeout": timeout,
            "decode_responses": False,
        }
        # Built sync, so the mode is known before the first await: one INFO, bounded by the
        # timeout (an unreachable Redis is asked again when the breaker probes it).
        try:
            with redis.Redis.from_url(
                redis_url, socket_timeout=timeout, socket_connect_timeout=timeout
            ) as probe:
                self._cluster = _cluster_enabled(probe.info("cluster"))
        except REDIS_ERRORS:
            self._cluster = None
        self._client: Any = self._new_client()
        self._set_if_newer = self._client.register_script(SET_IF_NEWER)

    def _new_client(self) -> Any:
        if self._cluster:
            return AsyncRedisCluster.from_url(self._redis_url, **self._options)
        return aioredis.Redis.from_url(self._redis_url, **self._options)

    async def _follow_mode(self) -> None:
        """As :meth:`RedisTokenCache._follow_mode`."""
        if self._cluster is not None:
            return
        cluster = _cluster_enabled(await self._client.info("cluster"))
        if cluster and not isinstance(self._client, AsyncRedisCluster):
            old, self._cluster = self._client, True
            self._client = self._new_client()
            self._set_if_newer = self._client.register_script(SET_IF_NEWER)
            await old.aclose()
            logger.info("Redis at %s is a cluster: using the cluster client", self._location)
        self._cluster = cluster

    async def _ready(self) -> bool:
        decision = self._breaker.decide()
        if decision is Decision.CLOSED:
            return True
        if decision is Decision.OPEN:
            return False
        try:
            await self._follow_mode()
            await self._client.ping()
            while keys := await self._invalidations.pending_invalidations(_FLUSH_BATCH):
                await self._client.delete(*keys)
                await self._invalidations.clear_invalidations(keys)
        except REDIS_ERRORS as error:
            self._failed(error)
            return False
        except VaultError:
            self._breaker.record_failure()
            return False
        self._recovered()
        return True

    async def get(self, cache_key: str) -> bytes | None:
        if not self._breaker.is_closed and not await self._ready():
            return None
        try:
            value = cast("bytes | None", await self._client.get(cache_key))
        except REDIS_ERRORS as error:
            self._failed(error)
            return None
        return value

    async def set(self, cache_key: str, value: bytes, ttl: int) -> bool:
        if not await self._ready():
            return False
        try:
            await self._client.set(cache_key, value, ex=ttl)
        except REDIS_ERRORS as error:
            self._failed(error)
            return False
        return True

    async def write_versioned(self, cache_key: str, version: int, value: bytes, ttl: int) -> bool:
        if not await self._ready():
            return False
        try:
            await self._set_if_newer(keys=[cache_key], args=[version, value, ttl])
        except REDIS_ERRORS as error:
            self._failed(error)
            return False
        return True

    async def check(self) -> bool:
        if not await self._ready():
            return False
        try:
            await self._client.ping()
        except REDIS_ERRORS as error:
            self._failed(error)
            return False
        return True

    async def take(self, cache_key: str) -> bytes | None:
        if not await self._ready():
            return None
        try:
            return cast("bytes | None", await self._client.getdel(cache_key))
        except REDIS_ERRORS as error:
            self._failed(error)
            return None

    async def delete(self, *cache_keys: str) -> bool:
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
