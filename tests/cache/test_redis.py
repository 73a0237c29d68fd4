"""Cache behaviour on real Redis: sealed values, TTLs, write-through, outages, recovery."""

from __future__ import annotations

import logging
import sqlite3
import time
from contextlib import closing

import psycopg
import pytest

from oauthvault import OAuthTokenCache
from oauthvault.cache import cache_key
from oauthvault.cache.versioned import SET_IF_NEWER, set_if_newer_args
from oauthvault.models import TokenKey

KEY = "oauth:token:google:ws_abc123:user_456"
ARGS = ("google", "ws_abc123", "user_456")


@pytest.fixture
def vault(database_url, redis_url, key, clock):
    """The Redis layer alone: no local cache in front of it (tests/cache/test_coherence.py
    covers both)."""
    with OAuthTokenCache(database_url, redis_url, key, clock=clock, local_cache=False) as vault:
        yield vault


@pytest.fixture
def database_only(database_url, key):
    """The same database without the cache: changes made here bypass Redis."""
    with OAuthTokenCache(database_url, "", key) as vault:
        yield vault


def test_cached_value_is_sealed_never_plaintext(vault, raw_redis):
    vault.store_tokens(*ARGS, "ya29.secret-access", "1//secret-refresh", 3600, "gmail.send")
    raw = raw_redis.get(KEY)
    assert raw is not None
    for plain in (b"ya29", b"secret", b"gmail.send"):
        assert plain not in raw


def test_ttl_is_the_token_lifetime(vault, raw_redis):
    vault.store_tokens(*ARGS, "at", expires_in=3600)
    assert raw_redis.ttl(KEY) == 3600


def test_a_token_without_expiry_gets_the_default_ttl(vault, raw_redis):
    vault.store_tokens(*ARGS, "at")
    assert raw_redis.ttl(KEY) == 3600


def test_an_expired_token_is_not_cached_but_still_returned(vault, raw_redis, clock):
    vault.store_tokens(*ARGS, "at", "rt", expires_in=0)
    assert raw_redis.exists(KEY) == 0
    assert vault.get_tokens(*ARGS)["refresh_token"] == "rt"
    assert raw_redis.exists(KEY) == 0


def test_storing_an_expired_token_drops_the_older_cached_one(vault, raw_redis):
    vault.store_tokens(*ARGS, "fresh", expires_in=3600)
    vault.store_tokens(*ARGS, "stale", expires_in=0)
    assert raw_redis.exists(KEY) == 0
    assert vault.get_tokens(*ARGS)["access_token"] == "stale"


def delete_unannounced(database_url):
    """Delete the row behind every vault's back: no change notification (triggers off in
    this session), so only a read of the database could notice."""
    if database_url.startswith("sqlite"):
        with closing(sqlite3.connect(database_url.removeprefix("sqlite:///"))) as connection:
            connection.execute("DELETE FROM oauth_tokens")
            connection.commit()
        return
    with psycopg.connect(database_url, autocommit=True) as connection:
        connection.execute("SET session_replication_role = replica")
        connection.execute("DELETE FROM oauth_tokens")


def served_from_redis_alone(vault, database_url):
    """What a Redis hit is served on: Redis alone while the change feed is live
    (PostgreSQL); without a feed (SQLite) the row's version confirms it, so a row deleted
    behind the vault's back is seen."""
    if database_url.startswith("sqlite"):
        return False
    deadline = time.monotonic() + 10
    while not vault.cache_info().feed_live and time.monotonic() < deadline:
        time.sleep(0.01)
    assert vault.cache_info().feed_live
    return True


def test_a_cache_hit_needs_the_database_only_without_a_feed(vault, raw_redis, database_url):
    alone = served_from_redis_alone(vault, database_url)
    vault.store_tokens(*ARGS, "at", expires_in=600)
    delete_unannounced(database_url)
    found = vault.get_tokens(*ARGS)
    assert (found["access_token"] if found else None) == ("at" if alone else None)


def test_a_miss_reads_the_database_and_warms_the_cache(vault, raw_redis, clock):
    vault.store_tokens(*ARGS, "at", expires_in=600)
    raw_redis.flushdb()
    clock.advance(100)
    assert vault.get_tokens(*ARGS)["access_token"] == "at"
    assert raw_redis.ttl(KEY) == 500


def test_store_overwrites_the_cached_value(vault, raw_redis, database_url):
    alone = served_from_redis_alone(vault, database_url)
    vault.store_tokens(*ARGS, "first", expires_in=600)
    first = raw_redis.get(KEY)
    vault.store_tokens(*ARGS, "second", expires_in=600)
    assert raw_redis.get(KEY) != first
    if alone:
        delete_unannounced(database_url)
    assert vault.get_tokens(*ARGS)["access_token"] == "second"


def test_delete_leaves_a_tombstone_that_no_older_write_passes(vault, raw_redis, key):
    vault.store_tokens(*ARGS, "at", expires_in=600)
    older = raw_redis.get(KEY)
    vault.delete_tokens(*ARGS)
    tombstone = raw_redis.get(KEY)
    assert tombstone is not None and tombstone.endswith(b":")  # "<version>:"
    assert 0 < raw_redis.ttl(KEY) <= 300
    assert vault.get_tokens(*ARGS) is None
    # A delayed write of the value from before the delete does not bring it back.
    script = raw_redis.register_script(SET_IF_NEWER)
    version = int(older.split(b":", 1)[0])
    assert script(keys=[KEY], args=set_if_newer_args(version, older, 600)) == 0
    assert raw_redis.get(KEY) == tombstone


def test_a_tampered_cache_entry_is_replaced_from_the_database(vault, raw_redis, caplog):
    vault.store_tokens(*ARGS, "genuine", expires_in=600)
    raw = bytearray(raw_redis.get(KEY))
    raw[-1] ^= 1
    raw_redis.set(KEY, bytes(raw))
    with caplog.at_level(logging.WARNING):
        assert vault.get_tokens(*ARGS)["access_token"] == "genuine"
    assert "failed to decrypt" in caplog.text
    repaired = raw_redis.get(KEY)
    assert repaired is not None and repaired != bytes(raw)  # the entry was replaced
    assert vault.get_tokens(*ARGS)["access_token"] == "genuine"


def test_a_value_copied_from_another_tenant_is_never_served(vault, raw_redis):
    vault.store_tokens("google", "ws_victim", "u", "victim-token", expires_in=600)
    vault.store_tokens("google", "ws_attacker", "u", "attacker-token", expires_in=600)
    victim = cache_key(TokenKey("google", "ws_victim", "u"))
    attacker = cache_key(TokenKey("google", "ws_attacker", "u"))
    raw_redis.set(attacker, raw_redis.get(victim))
    assert vault.get_tokens("google", "ws_attacker", "u")["access_token"] == "attacker-token"


def test_a_value_copied_from_a_newer_connection_is_replaced_on_the_first_read(
    vault, raw_redis, caplog
):
    vault.store_tokens("google", "ws_b", "u", "b-token", expires_in=600)
    vault.store_tokens("google", "ws_a", "u", "a-token", expires_in=600)  # a newer version
    a_key = cache_key(TokenKey("google", "ws_a", "u"))
    b_key = cache_key(TokenKey("google", "ws_b", "u"))
    b_version = int(raw_redis.get(b_key).split(b":", 1)[0])
    raw_redis.set(b_key, raw_redis.get(a_key), ex=600)  # with a TTL, as the vault writes
    with caplog.at_level(logging.WARNING, logger="oauthvault"):
        assert vault.get_tokens("google", "ws_b", "u")["access_token"] == "b-token"
    assert "failed to decrypt" in caplog.text
    repaired = raw_redis.get(b_key)
    assert repaired != raw_redis.get(a_key)
    assert int(repaired.split(b":", 1)[0]) == b_version  # B's own record again
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="oauthvault"):
        assert vault.get_tokens("google", "ws_b", "u")["access_token"] == "b-token"
    assert not [record for record in caplog.records if record.levelno >= logging.WARNING]


def test_a_high_version_tombstone_without_ttl_does_not_keep_a_connection_out(vault, raw_redis):
    vault.store_tokens(*ARGS, "at", expires_in=600)
    raw_redis.set(KEY, b"999999999999:")  # no TTL: no tombstone the vault writes
    assert vault.get_tokens(*ARGS)["access_token"] == "at"
    version, _, sealed = raw_redis.get(KEY).partition(b":")
    assert sealed and int(version) < 999999999999  # the connection's own record again
    assert 0 < raw_redis.ttl(KEY) <= 600


def test_keys_with_colons_are_escaped_in_redis(vault, raw_redis):
    vault.store_tokens("google", "a:b", "c", "one", expires_in=600)
    vault.store_tokens("google", "a", "b:c", "two", expires_in=600)
    assert sorted(raw_redis.keys("oauth:token:*")) == [
        b"oauth:token:google:a%3Ab:c",
        b"oauth:token:google:a:b%3Ac",
    ]


# --- outages -------------------------------------------------------------------------


@pytest.fixture
def outage_vault(database_url, private_redis, key, clock):
    with OAuthTokenCache(
        database_url, private_redis.url, key, clock=clock, local_cache=False
    ) as vault:
        yield vault


def test_redis_down_at_start_then_back(database_url, private_redis, key, clock, caplog):
    private_redis.stop()
    with (
        caplog.at_level(logging.WARNING),
        OAuthTokenCache(
            database_url, private_redis.url, key, clock=clock, local_cache=False
        ) as vault,
    ):
        assert vault.backend_mode == "db+cache"
        vault.store_tokens(*ARGS, "stored-while-down", expires_in=600)
        assert vault.get_tokens(*ARGS)["access_token"] == "stored-while-down"
        assert vault.cache_available is False
        assert caplog.text.count("unavailable") == 1

        private_redis.start()
        clock.advance(60)
        assert vault.get_tokens(*ARGS)["access_token"] == "stored-while-down"
        assert vault.cache_available is True
        assert private_redis.client().exists(KEY) == 1  # warmed again


def test_redis_dying_mid_run_is_served_from_the_database(outage_vault, private_redis, caplog):
    vault = outage_vault
    vault.store_tokens(*ARGS, "v1", expires_in=600)
    private_redis.stop()
    with caplog.at_level(logging.INFO, logger="oauthvault"):
        for _ in range(5):
            assert vault.get_tokens(*ARGS)["access_token"] == "v1"
        vault.store_tokens(*ARGS, "v2", expires_in=600)
        assert vault.get_tokens(*ARGS)["access_token"] == "v2"
        assert vault.delete_tokens(*ARGS) is True
        assert vault.get_tokens(*ARGS) is None
    assert caplog.text.count("unavailable") == 1  # logged once per outage, not per call


def test_a_hung_redis_costs_one_timeout_not_one_per_call(outage_vault, private_redis, caplog):
    vault = outage_vault
    vault.store_tokens(*ARGS, "v1", expires_in=600)
    private_redis.freeze()
    started = time.monotonic()
    with caplog.at_level(logging.WARNING):
        for _ in range(40):
            assert vault.get_tokens(*ARGS)["access_token"] == "v1"
    elapsed = time.monotonic() - started
    private_redis.thaw()
    assert caplog.text.count("unavailable") == 1
    # 40 calls at the 0.25 s timeout each would take 10 s; the breaker makes it one timeout.
    assert elapsed < 3


def invalidations_left(database_url):
    """Rows in the invalidation log, read straight from the database."""
    query = "SELECT count(*) FROM oauth_cache_invalidations"
    if database_url.startswith("sqlite:///"):
        with closing(sqlite3.connect(database_url.removeprefix("sqlite:///"))) as connection:
            return connection.execute(query).fetchone()[0]
    with psycopg.connect(database_url) as connection:
        return connection.execute(query).fetchone()[0]


def test_a_value_stored_during_an_outage_is_not_shadowed_by_the_old_cached_one(
    outage_vault, private_redis, clock, database_url
):
    vault = outage_vault
    vault.store_tokens(*ARGS, "v1", expires_in=600)
    stale = private_redis.client().get(KEY)
    private_redis.freeze()
    vault.store_tokens(*ARGS, "v2", expires_in=600)  # the database has v2
    private_redis.thaw()
    private_redis.client().set(KEY, stale)  # as if the SET of v2 never reached Redis
    clock.advance(60)
    assert vault.get_tokens(*ARGS)["access_token"] == "v2"
    assert invalidations_left(database_url) == 0


def test_a_delete_during_an_outage_is_not_undone_by_the_cache(outage_vault, private_redis, clock):
    vault = outage_vault
    vault.store_tokens(*ARGS, "v1", expires_in=600)
    stale = private_redis.client().get(KEY)
    private_redis.freeze()
    assert vault.delete_tokens(*ARGS) is True
    private_redis.thaw()
    private_redis.client().set(KEY, stale)  # as if the DEL never reached Redis
    clock.advance(60)
    assert vault.get_tokens(*ARGS) is None


def test_another_process_replays_invalidations_before_using_redis(
    database_url, private_redis, key, clock
):
    with OAuthTokenCache(database_url, private_redis.url, key, clock=clock) as first:
        first.store_tokens(*ARGS, "v1", expires_in=600)
        stale = private_redis.client().get(KEY)
        private_redis.freeze()
        first.store_tokens(*ARGS, "v2", expires_in=600)
        private_redis.thaw()
        private_redis.client().set(KEY, stale)
    with OAuthTokenCache(database_url, private_redis.url, key, clock=clock) as second:
        assert second.get_tokens(*ARGS)["access_token"] == "v2"


def test_readiness_names_the_cache_state(outage_vault, private_redis, clock):
    vault = outage_vault
    assert vault.readiness().cache == "up"
    private_redis.stop()
    down = vault.readiness()
    assert down.ready and down.cache == "down"  # degraded service, still ready
    private_redis.start()
    clock.advance(60)  # the breaker's cooldown
    assert vault.readiness().cache == "up"
