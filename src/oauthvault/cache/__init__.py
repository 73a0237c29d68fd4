"""The optional Redis cache in front of the database."""

from oauthvault.cache.breaker import CircuitBreaker
from oauthvault.cache.keys import cache_key
from oauthvault.cache.redis import RedisTokenCache
from oauthvault.cache.redis_async import AsyncRedisTokenCache

__all__ = [
    "AsyncRedisTokenCache",
    "CircuitBreaker",
    "RedisTokenCache",
    "cache_key",
]
