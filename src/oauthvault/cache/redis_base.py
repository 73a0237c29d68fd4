"""What the Redis cache's two flavours share: settings, error classes, the outage state
and its logging (no I/O here).

No Redis error leaves :mod:`oauthvault.cache`: each one is logged (once per outage), opens
the circuit breaker, and the call reports a miss or a failed write so the vault falls back
to the database. Writes that could not reach Redis are recorded in the database's
invalidation log; before Redis is used again those keys are deleted from it, so a value
written during an outage is never shadowed by an older cached one.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisClusterException, RedisError, ResponseError

from oauthvault.cache.breaker import CircuitBreaker
from oauthvault.cache.versioned import set_if_newer_args

__all__ = [
    "DEFAULT_TIMEOUT",
    "FLUSH_BATCH",
    "FOREIGN_LIMIT",
    "REDIS_ERRORS",
    "RETRIED_ERRORS",
    "CacheBase",
    "cluster_enabled",
    "redis_location",
]

logger = logging.getLogger("oauthvault.cache")

DEFAULT_TIMEOUT = 0.25
#: Keys deleted from Redis per command when the invalidation log is replayed.
FLUSH_BATCH = 500
#: Values found foreign remembered at once (see :meth:`CacheBase.distrust`), oldest dropped.
FOREIGN_LIMIT = 1024

#: Every error a Redis call can raise: the cluster client's own exception (no cluster node
#: reachable, a bad topology) is not a RedisError.
REDIS_ERRORS = (RedisError, RedisClusterException)

# What a cluster node answers a client that does not follow slots.
_CLUSTER_ANSWERS = ("MOVED", "ASK", "CLUSTERDOWN", "CROSSSLOT")

#: One quick retry on a dropped connection (a pooled socket from before a Redis restart),
#: none on timeouts: a hung Redis must cost one timeout, then the breaker takes over.
RETRIED_ERRORS = (RedisConnectionError,)


def cluster_enabled(info: Mapping[str, object]) -> bool:
    """Whether an ``INFO cluster`` answer comes from a node of a Redis Cluster."""
    return str(info.get("cluster_enabled", "0")) == "1"


def redis_location(redis_url: str) -> str:
    """host:port/db of a Redis URL, without user or password."""
    parts = urlsplit(redis_url)
    return f"{parts.hostname or 'localhost'}:{parts.port or 6379}{parts.path or ''}"


class CacheBase:
    """State and logging shared by the sync and async caches; no I/O here."""

    def __init__(self, redis_url: str, breaker: CircuitBreaker | None, timeout: float) -> None:
        self._breaker = breaker or CircuitBreaker()
        self._location = redis_location(redis_url)
        self._outage_reported = False
        self._redis_url = redis_url
        self._timeout = timeout
        #: Whether Redis is a cluster, once a server said so (None: not asked yet).
        self._cluster: bool | None = None
        self._foreign: dict[str, bytes] = {}

    def distrust(self, cache_key: str, value: bytes) -> None:
        """A read found ``value`` under ``cache_key`` not to be that connection's (sealed
        for another, inconsistent, a tombstone claiming a version the row never had): the
        next versioned write to the key replaces it if Redis still holds exactly it,
        whatever version it claims. A concurrent newer write is not replaced: the value
        differs then."""
        foreign = self._foreign
        foreign.pop(cache_key, None)
        if len(foreign) >= FOREIGN_LIMIT:
            foreign.pop(next(iter(foreign)), None)
        foreign[cache_key] = value

    def _versioned_args(
        self, cache_key: str, version: int, value: bytes, ttl: int
    ) -> list[int | bytes]:
        return set_if_newer_args(version, value, ttl, self._foreign.pop(cache_key, b""))

    def _client_options(self, retry: Any) -> dict[str, Any]:
        """What every client of this cache is made with (``retry``: its flavour's)."""
        return {
            "retry": retry,
            "socket_timeout": self._timeout,
            "socket_connect_timeout": self._timeout,
            "decode_responses": False,
        }

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
