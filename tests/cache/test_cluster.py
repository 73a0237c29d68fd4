"""Redis Cluster: REDIS_URL names one node of a real three-master cluster on loopback; the
vault finds out when it connects and spreads its keys over the slots. Versioned writes,
tombstones, one-time records (GETDEL) and the fallback to the database when a master dies
all work. (The whole cache contract also runs against the cluster: tests/vault.)"""

from __future__ import annotations

import asyncio
import uuid

import pytest
import redis

from oauthvault import AsyncOAuthTokenCache, OAuthTokenCache
from oauthvault.cache import cache_key
from oauthvault.models import TokenKey

from tests.helpers.redis_cluster import RedisCluster

# The first Python only (scripts/test's `once`): cluster routing is redis-py's, not the
# interpreter's, and each test here starts or drives a three-node cluster.
pytestmark = [pytest.mark.once, pytest.mark.slow]


def _workspace() -> str:
    return f"ws_{uuid.uuid4().hex[:8]}"


def _in_cluster(cluster: RedisCluster, name: str) -> bytes | None:
    with redis.Redis(port=cluster.master_of(name)) as node:
        return node.get(name)  # type: ignore[return-value]


def test_keys_spread_over_the_masters_and_reads_come_from_the_cluster(
    redis_cluster, postgres_url, pg, key
):
    workspace = _workspace()
    with OAuthTokenCache(postgres_url, redis_cluster.url, key, local_cache=False) as vault:
        for index in range(30):
            vault.store_tokens("google", workspace, f"u{index}", f"token-{index}", "r", 3600)
        names = [cache_key(TokenKey("google", workspace, f"u{index}")) for index in range(30)]
        masters = {redis_cluster.master_of(name) for name in names}
        assert len(masters) == 3  # 30 keys over 16384 slots on three masters
        assert all(_in_cluster(redis_cluster, name) is not None for name in names)
        before = vault.cache_info().redis_hits
        for index in range(30):
            assert vault.get_access_token("google", workspace, f"u{index}") == f"token-{index}"
        assert vault.cache_info().redis_hits == before + 30
        vault.delete_tokens("google", workspace, "u0")  # a tombstone on its master
        tombstone = _in_cluster(redis_cluster, names[0])
        assert tombstone is not None and tombstone.endswith(b":")
        assert vault.get_tokens("google", workspace, "u0") is None
        records = vault.pending_records("state", 60)
        saved = records.save({"hello": "world"})
        assert records.take(saved.secret) == {"hello": "world"}
        assert records.take(saved.secret) is None  # GETDEL: once


def test_the_async_vault_uses_the_cluster_too(redis_cluster, postgres_url, pg, key):
    workspace = _workspace()

    async def scenario() -> int:
        async with AsyncOAuthTokenCache(
            postgres_url, redis_cluster.url, key, local_cache=False
        ) as vault:
            for index in range(10):
                await vault.store_tokens("google", workspace, f"u{index}", f"t{index}", None, 600)
            for index in range(10):
                found = await vault.get_tokens("google", workspace, f"u{index}")
                assert found is not None and found.access_token == f"t{index}"
            return vault.cache_info().redis_hits

    assert asyncio.run(scenario()) == 10


@pytest.fixture
def doomed_cluster(tmp_path):
    cluster = RedisCluster(tmp_path)
    cluster.start()
    yield cluster
    cluster.stop()


def test_a_killed_master_sends_reads_to_the_database_and_loses_nothing(
    doomed_cluster, postgres_url, pg, key
):
    workspace = _workspace()
    with OAuthTokenCache(postgres_url, doomed_cluster.url, key, local_cache=False) as vault:
        for index in range(12):
            vault.store_tokens("google", workspace, f"u{index}", f"before-{index}", None, 3600)
        victim = doomed_cluster.master_of(cache_key(TokenKey("google", workspace, "u0")))
        doomed_cluster.kill(victim)
        for index in range(12):  # every read answers, from Redis or from the database
            assert vault.get_access_token("google", workspace, f"u{index}") == f"before-{index}"
        vault.store_tokens("google", workspace, "u0", "during", None, 3600)
        assert vault.get_access_token("google", workspace, "u0") == "during"
        assert vault.cache_info().database_reads >= 1


def test_a_frozen_master_is_waited_out_and_nothing_stale_is_served_after_it_thaws(
    doomed_cluster, postgres_url, pg, key
):
    """A master frozen (SIGSTOP) while a store lands: reads answer from the database
    meanwhile; once it thaws, what it held is never served over the newer store."""
    import time

    workspace = _workspace()
    with OAuthTokenCache(postgres_url, doomed_cluster.url, key, local_cache=False) as vault:
        vault.store_tokens("google", workspace, "u", "v1", None, 3600)
        name = cache_key(TokenKey("google", workspace, "u"))
        victim = doomed_cluster.master_of(name)
        doomed_cluster.freeze(victim)
        started = time.monotonic()
        try:
            vault.store_tokens("google", workspace, "u", "v2", None, 3600)  # its SET waits
            assert vault.get_access_token("google", workspace, "u") == "v2"
        finally:
            doomed_cluster.thaw(victim)
        waited = time.monotonic() - started
        for _ in range(50):
            assert vault.get_access_token("google", workspace, "u") == "v2"
            time.sleep(0.02)
    print(f"FIGURES cluster frozen master: store + read answered in {waited:.2f}s")
