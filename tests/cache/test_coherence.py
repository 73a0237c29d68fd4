"""A coherent cache: versioned rows and Redis values, the change feed, the local cache.

Real PostgreSQL (the shared one, and a private one to restart), real Redis (a private
redis-server to freeze with SIGSTOP), several processes. Nothing here asserts a speed;
figures are printed (``FIGURES …``) for the notes.
"""

from __future__ import annotations

import functools
import multiprocessing
import time
import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from oauthvault import OAuthTokenCache, StorageUnavailable
from oauthvault.cache import cache_key
from oauthvault.config import Settings
from oauthvault.models import TokenKey
from oauthvault.storage.location import parse_database_url
from oauthvault.storage.migrations import upgrade

from tests.helpers.coherence_worker import churn, store_in_turn
from tests.helpers.oidc_server import OIDCServer, local_provider_toml
from tests.helpers.postgres_server import PostgresServer
from tests.helpers.redis_server import RedisServer
from tests.helpers.waiting import wait_for


def ids() -> tuple[str, str, str]:
    return ("google", f"ws_{uuid.uuid4().hex[:8]}", "user")


def settings(database_url: str, redis_url: str, key: str, **extra: Any) -> Settings:
    return Settings.load(
        database_url=database_url, redis_url=redis_url, oauth_encryption_key=key, **extra
    )


# Polled every 0.2 ms: the seconds it returns are the figures printed.
wait_until = functools.partial(wait_for, interval=0.0002)


def live(vault: OAuthTokenCache) -> bool:
    return vault.cache_info().local_live


def feed_live(vault: Any) -> bool:
    return bool(vault.cache_info().feed_live)


# Coherence must not depend on the in-process cache (OAUTHVAULT_LOCAL_CACHE=false).
LOCAL_CACHE = pytest.mark.parametrize("local_cache", [True, False], ids=["local", "no_local"])


@LOCAL_CACHE
def test_a_frozen_redis_never_brings_back_a_superseded_token(
    postgres_url: str, pg: Any, private_redis: RedisServer, key: str, local_cache: bool
) -> None:
    """Finding 1: R caches v0; Redis is frozen; W (another process) stores v1 (its write
    times out and waits in the socket) and v2 (breaker open: only the invalidation log);
    Redis thaws and the queued v1 lands. R, whose breaker never tripped, must not serve v1
    once v2 was announced."""
    where = ids()
    chosen = settings(postgres_url, private_redis.url, key, local_cache=local_cache)
    with OAuthTokenCache(settings=chosen) as reader:
        wait_until(lambda: feed_live(reader), timeout=10)
        reader.store_tokens(*where, "v0", "r", expires_in=3600)
        assert reader.get_tokens(*where).access_token == "v0"
        private_redis.freeze()
        context = multiprocessing.get_context("spawn")
        results = context.Queue()
        writer = context.Process(
            target=store_in_turn,
            args=(postgres_url, private_redis.url, key, where, ["v1", "v2"], results),
        )
        writer.start()
        writer_cache_was_up = results.get(timeout=60)
        writer.join(timeout=30)
        private_redis.thaw()
        name = cache_key(TokenKey(*where))
        landed = wait_until(lambda: private_redis.client().get(name) is not None)
        in_redis = private_redis.client().get(name)
        assert in_redis is not None and in_redis.split(b":", 1)[0].isdigit()
        served = [reader.get_tokens(*where).access_token for _ in range(200)]
        time.sleep(0.5)
        served += [reader.get_tokens(*where).access_token for _ in range(200)]
    assert writer_cache_was_up is False  # the writer's breaker did trip
    assert set(served) == {"v2"}, set(served)
    print(f"FIGURES frozen_redis reads=400 stale=0 redis_value_back_after={landed:.3f}s")


@LOCAL_CACHE
def test_a_written_back_older_value_is_refused_and_repaired(
    postgres_url: str, pg: Any, redis_url: str, raw_redis: Any, key: str, local_cache: bool
) -> None:
    """Finding 2: a process that heard of v2 refuses a replayed v1 from Redis, reads the
    row, and puts v2 back in Redis."""
    where = ids()
    name = cache_key(TokenKey(*where))
    short_lived = settings(
        postgres_url, redis_url, key, local_cache_max_age=0.05, local_cache=local_cache
    )
    with (
        OAuthTokenCache(settings=short_lived) as reader,
        OAuthTokenCache(settings=settings(postgres_url, redis_url, key)) as writer,
    ):
        wait_until(lambda: feed_live(reader), timeout=10)
        writer.store_tokens(*where, "v1", "r", expires_in=3600)
        saved_v1 = raw_redis.get(name)
        heard_before = reader.cache_info().changes_heard
        writer.store_tokens(*where, "v2", "r", expires_in=3600)
        heard = wait_until(lambda: reader.cache_info().changes_heard > heard_before)
        assert reader.get_tokens(*where).access_token == "v2"
        raw_redis.set(name, saved_v1, ex=3600)  # the attacker's (or a replay's) write
        time.sleep(0.1)  # the reader's local entry (50 ms) is gone: it reads Redis
        before = reader.cache_info()
        assert reader.get_tokens(*where).access_token == "v2"
        after = reader.cache_info()
        assert after.refused == before.refused + 1
        repaired = raw_redis.get(name)
    assert repaired != saved_v1
    assert int(repaired.split(b":", 1)[0]) > int(saved_v1.split(b":", 1)[0])
    print(f"FIGURES replayed_value refused=1 repaired=yes heard_after={heard:.3f}s")


def test_another_process_s_store_is_seen_through_the_feed(
    postgres_url: str, pg: Any, key: str
) -> None:
    """Database only, local cache on: a store by another vault replaces what this one
    cached, as soon as the notification arrives (the time is printed)."""
    where = ids()
    with (
        OAuthTokenCache(settings=settings(postgres_url, "", key)) as reader,
        OAuthTokenCache(settings=settings(postgres_url, "", key, local_cache=False)) as writer,
    ):
        wait_until(lambda: live(reader))
        writer.store_tokens(*where, "first", "r", expires_in=3600)
        assert reader.get_tokens(*where).access_token == "first"
        hits = reader.cache_info().local_hits
        assert reader.get_tokens(*where).access_token == "first"
        assert reader.cache_info().local_hits == hits + 1
        lags = []
        for n in range(50):
            writer.store_tokens(*where, f"t{n}", "r", expires_in=3600)
            lags.append(
                wait_until(
                    lambda n=n: reader.get_tokens(*where).access_token == f"t{n}"  # type: ignore[misc,union-attr]
                )
            )
        writer.delete_tokens(*where)
        wait_until(lambda: reader.get_tokens(*where) is None)
    lags.sort()
    print(f"FIGURES feed_propagation n=50 p50={lags[25] * 1000:.2f}ms max={lags[-1] * 1000:.2f}ms")


@pytest.fixture(scope="module")
def private_pg() -> Iterator[PostgresServer]:
    server = PostgresServer()
    server.start()
    try:
        yield server
    finally:
        server.close()


@pytest.mark.slow  # a private PostgreSQL, killed and restarted
def test_the_listener_killed_and_postgres_restarted_never_serve_stale(
    private_pg: PostgresServer, key: str
) -> None:
    database = private_pg.create_database(f"feed_{uuid.uuid4().hex[:8]}")
    upgrade(parse_database_url(database))
    where = ids()
    with (
        OAuthTokenCache(settings=settings(database, "", key)) as reader,
        OAuthTokenCache(settings=settings(database, "", key, local_cache=False)) as writer,
    ):
        wait_until(lambda: live(reader))
        writer.store_tokens(*where, "v1", "r", expires_in=3600)
        assert reader.get_tokens(*where).access_token == "v1"
        # The listener's session is killed: the local cache drops, serves nothing stale.
        private_pg.terminate_backends(database.rsplit("/", 1)[-1])
        writer.store_tokens(*where, "v2", "r", expires_in=3600)
        assert reader.get_tokens(*where).access_token == "v2"
        back = wait_until(lambda: live(reader))
        assert reader.cache_info().local_suspensions >= 1
        # PostgreSQL restarted: reads fail typed while it is down, then come back.
        private_pg.stop()
        with pytest.raises(StorageUnavailable):
            reader.get_stored_tokens(*where)
        private_pg.start()
        wait_until(lambda: _works(writer, where) and _works(reader, where), timeout=10)
        writer.store_tokens(*where, "v3", "r", expires_in=3600)
        assert reader.get_tokens(*where).access_token == "v3"
        again = wait_until(lambda: live(reader), timeout=10)
        hits = reader.cache_info().local_hits
        assert reader.get_tokens(*where).access_token == "v3"
        reader.get_tokens(*where)
        assert reader.cache_info().local_hits > hits  # it came back
    print(f"FIGURES listener_killed relive_after={back:.3f}s restart_relive_after={again:.3f}s")


def _works(vault: OAuthTokenCache, where: tuple[str, str, str]) -> bool:
    try:
        vault.get_stored_tokens(*where)
    except StorageUnavailable:
        return False
    return True


HISTORY = """
CREATE TABLE IF NOT EXISTS test_history (
    provider text, workspace_id text, actor_id text, version bigint, deleted boolean,
    at double precision DEFAULT extract(epoch FROM clock_timestamp()));
CREATE OR REPLACE FUNCTION test_history_log() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        INSERT INTO test_history (provider, workspace_id, actor_id, version, deleted)
        VALUES (OLD.provider, OLD.workspace_id, OLD.actor_id, OLD.version, true);
        RETURN OLD;
    END IF;
    INSERT INTO test_history (provider, workspace_id, actor_id, version, deleted)
    VALUES (NEW.provider, NEW.workspace_id, NEW.actor_id, NEW.version, false);
    RETURN NEW;
END $$;
DROP TRIGGER IF EXISTS test_history_log ON oauth_tokens;
CREATE TRIGGER test_history_log AFTER INSERT OR UPDATE OR DELETE ON oauth_tokens
    FOR EACH ROW EXECUTE FUNCTION test_history_log();
"""
# Reads may trail a committed change by at most this (README: the feed's delivery time,
# far below it in practice; past it the feed's probe suspends the local cache).
PROPAGATION_BOUND = 2.0
# Each churning process's operations, a seeded random mix (about 1,570 reads and 710 writes
# in all): the same work on a busy machine as on a quiet one, where a fixed time was not.
CHURN_OPERATIONS = 600


@pytest.mark.slow  # four processes
def test_four_processes_never_read_older_than_committed_beyond_the_bound(
    postgres_url: str, pg: Any, redis_url: str, key: str, tmp_path: Any
) -> None:
    with OIDCServer(auto_approve=True) as op:
        path = tmp_path / "providers.toml"
        path.write_text(local_provider_toml(op.issuer))
        pg.execute(HISTORY)
        connections = [("local", f"ws_prop_{n}", "u") for n in range(3)]
        context = multiprocessing.get_context("spawn")
        go, ready, results = context.Event(), context.Queue(), context.Queue()
        processes = [
            context.Process(
                target=churn,
                args=(
                    postgres_url,
                    redis_url,
                    key,
                    str(path),
                    f"p{n}",
                    connections,
                    CHURN_OPERATIONS,
                    n,
                    go,
                    ready,
                    results,
                ),
            )
            for n in range(4)
        ]
        for process in processes:
            process.start()
        for _ in processes:
            ready.get(timeout=60)
        time.sleep(0.5)  # every feed live
        go.set()
        outcomes = [results.get(timeout=120) for _ in processes]
        for process in processes:
            process.join(timeout=30)
    with psycopg.connect(postgres_url) as connection:
        history = connection.execute(
            "SELECT workspace_id, version, deleted, at FROM test_history ORDER BY at"
        ).fetchall()
        connection.execute("DROP TRIGGER test_history_log ON oauth_tokens")
    events: dict[int, list[tuple[int, bool, float]]] = {n: [] for n in range(3)}
    for workspace_id, version, deleted, at in history:
        if workspace_id.startswith("ws_prop_"):
            events[int(workspace_id[-1])].append((version, deleted, at))
    stale = worst = 0.0
    stale_reads = 0
    reads = 0
    for outcome in outcomes:
        for which, version, started, ended in outcome["reads"]:
            reads += 1
            lag = _staleness(events[which], version, started, ended)
            worst = max(worst, lag)
            if lag > PROPAGATION_BOUND:
                stale_reads += 1
                stale = max(stale, lag)
    writes = sum(outcome["writes"] for outcome in outcomes)
    assert reads > 1000 and writes > 100, (reads, writes)
    assert stale_reads == 0, f"{stale_reads} reads older than the bound (worst {stale:.3f}s)"
    print(
        f"FIGURES property processes=4 reads={reads} writes={writes} "
        f"history={len(history)} worst_trailing={worst * 1000:.1f}ms bound={PROPAGATION_BOUND}s"
    )


def _staleness(
    events: list[tuple[int, bool, float]], version: int | None, started: float, ended: float
) -> float:
    """How long before the read began its answer had been superseded (0: it was current).

    The state at a moment is the last change committed before it (version, deleted). A
    read of version V is as new as a state (v, deleted) if V >= v (V > v after a delete);
    a read of nothing is, if the row was deleted at or after v by the time the read ended.
    """
    before = [event for event in events if event[2] < started]

    def as_new_as(state: tuple[int, bool] | None) -> bool:
        if state is None:
            return True
        v, deleted = state
        if version is None:
            return deleted or any(d and ev >= v and at <= ended for ev, d, at in events)
        return version > v if deleted else version >= v

    for i in range(len(before), 0, -1):  # from the newest state back
        state = (before[i - 1][0], before[i - 1][1])
        if as_new_as(state):
            return 0.0 if i == len(before) else started - before[i][2]
    return started - before[0][2] if before else 0.0


def test_a_listener_that_cannot_hear_the_writes_turns_the_local_cache_off(
    postgres_url: str, pg: Any, key: str, caplog: pytest.LogCaptureFixture
) -> None:
    """As behind PgBouncer in transaction mode: notifications never reach the listener
    (here it listens on another database). The probe, sent the way writes go, never comes
    back: one warning, no local cache, and every read still right."""
    other = f"oauthvault_listen_{uuid.uuid4().hex[:8]}"
    admin = postgres_url.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{other}"')
    try:
        deaf = settings(postgres_url, "", key, listen_url=admin.rsplit("/", 1)[0] + "/" + other)
        where = ids()
        with (
            caplog.at_level("WARNING", logger="oauthvault.feed"),
            OAuthTokenCache(settings=deaf) as reader,
            OAuthTokenCache(settings=settings(postgres_url, "", key, local_cache=False)) as w,
        ):
            wait_until(lambda: reader.cache_info().feed_unsupported, timeout=10)
            for n in range(5):
                w.store_tokens(*where, f"t{n}", "r", expires_in=3600)
                assert reader.get_tokens(*where).access_token == f"t{n}"
            info = reader.cache_info()
            assert info.local_enabled and not info.local_live and info.local_hits == 0
        assert caplog.text.count("do not arrive") == 1
        assert "OAUTHVAULT_LISTEN_URL" in caplog.text
    finally:
        with psycopg.connect(admin, autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{other}" WITH (FORCE)')


def test_a_live_local_cache_still_refuses_bad_ids_and_serves_hits_alone(
    postgres_url: str, pg: Any, key: str
) -> None:
    """Local hits skip building a TokenKey; ids that could never have been kept still get
    InvalidInput (not a TypeError from hashing), and a fresh hit reads nothing else."""
    from oauthvault import InvalidInput

    where = ids()
    with OAuthTokenCache(settings=settings(postgres_url, "", key)) as vault:
        wait_until(lambda: live(vault))
        vault.store_tokens(*where, "held", "r", expires_in=3600)
        assert vault.get_tokens(*where).access_token == "held"  # type: ignore[union-attr]
        before = vault.cache_info()
        assert vault.get_access_token(*where) == "held"
        assert vault.get_fresh_tokens(*where).access_token == "held"
        after = vault.cache_info()
        assert after.local_hits == before.local_hits + 2
        assert after.database_reads == before.database_reads

        class Folded(str):  # compares and hashes case-insensitively
            def __eq__(self, other: object) -> bool:
                return isinstance(other, str) and self.lower() == other.lower()

            def __hash__(self) -> int:
                return hash(self.lower())

        vault.store_tokens(where[0], where[1], "OTHER", "someone-else", "r", expires_in=3600)
        assert vault.get_tokens(where[0], where[1], "other") is None
        assert vault.get_tokens(*where).access_token == "held"  # type: ignore[union-attr]
        found = vault.get_tokens(where[0], where[1], Folded("OTHER"))
        assert found is not None and found.access_token == "someone-else"
        assert vault.get_access_token(Folded(where[0]), where[1], where[2]) == "held"
        for bad in (["google"], ""):
            for call in (vault.get_tokens, vault.get_access_token, vault.get_fresh_tokens):
                with pytest.raises(InvalidInput):
                    call(bad, where[1], where[2])  # type: ignore[arg-type]


def test_the_async_vault_follows_the_feed_too(postgres_url: str, pg: Any, key: str) -> None:
    import asyncio

    from oauthvault import AsyncOAuthTokenCache

    where = ids()

    async def scenario() -> tuple[int, int]:
        async with AsyncOAuthTokenCache(settings=settings(postgres_url, "", key)) as reader:
            with OAuthTokenCache(settings=settings(postgres_url, "", key)) as writer:
                while not reader.cache_info().local_live:
                    await asyncio.sleep(0.01)
                writer.store_tokens(*where, "a1", "r", expires_in=3600)
                assert (await reader.get_tokens(*where)).access_token == "a1"
                assert (await reader.get_tokens(*where)).access_token == "a1"
                writer.store_tokens(*where, "a2", "r", expires_in=3600)
                for _ in range(1000):
                    found = await reader.get_tokens(*where)
                    if found is not None and found.access_token == "a2":
                        break
                    await asyncio.sleep(0.002)
                assert found is not None and found.access_token == "a2"
                info = reader.cache_info()
                return info.local_hits, info.changes_heard

    hits, heard = asyncio.run(scenario())
    assert hits >= 1 and heard >= 2


@LOCAL_CACHE
def test_the_writer_refuses_a_replayed_older_value(
    postgres_url: str, pg: Any, redis_url: str, raw_redis: Any, key: str, local_cache: bool
) -> None:
    """The process that wrote v2 never serves a replayed v1 from Redis, local cache or not
    (with it on, its entry is dropped first by a short max age)."""
    where = ids()
    name = cache_key(TokenKey(*where))
    chosen = settings(
        postgres_url, redis_url, key, local_cache_max_age=0.05, local_cache=local_cache
    )
    with OAuthTokenCache(settings=chosen) as vault:
        vault.store_tokens(*where, "v1", "r", expires_in=3600)
        saved_v1 = raw_redis.get(name)
        vault.store_tokens(*where, "v2", "r", expires_in=3600)
        raw_redis.set(name, saved_v1, ex=3600)
        time.sleep(0.1)
        assert vault.get_tokens(*where).access_token == "v2"  # type: ignore[union-attr]
        assert vault.get_access_token(*where) == "v2"
        assert vault.cache_info().refused >= 1
    assert int(raw_redis.get(name).split(b":", 1)[0]) > int(saved_v1.split(b":", 1)[0])


@LOCAL_CACHE
def test_the_async_vault_refuses_a_replayed_older_value(
    postgres_url: str, pg: Any, redis_url: str, raw_redis: Any, key: str, local_cache: bool
) -> None:
    """As above for the asyncio vault: its own write, and another process's heard on the
    feed."""
    import asyncio

    from oauthvault import AsyncOAuthTokenCache

    mine, theirs = ids(), ids()
    chosen = settings(
        postgres_url, redis_url, key, local_cache_max_age=0.05, local_cache=local_cache
    )

    async def scenario() -> list[str]:
        async with AsyncOAuthTokenCache(settings=chosen) as vault:
            with OAuthTokenCache(settings=settings(postgres_url, redis_url, key)) as other:
                for _ in range(500):
                    if feed_live(vault):
                        break
                    await asyncio.sleep(0.01)
                assert feed_live(vault)
                served = []
                for where, writer in ((mine, None), (theirs, other)):
                    name = cache_key(TokenKey(*where))
                    for token in ("v1", "v2"):
                        heard = vault.cache_info().changes_heard
                        if writer is None:
                            await vault.store_tokens(*where, token, "r", expires_in=3600)
                        else:
                            writer.store_tokens(*where, token, "r", expires_in=3600)
                            for _ in range(500):
                                if vault.cache_info().changes_heard > heard:
                                    break
                                await asyncio.sleep(0.002)
                        if token == "v1":
                            saved_v1 = raw_redis.get(name)
                    raw_redis.set(name, saved_v1, ex=3600)
                    await asyncio.sleep(0.1)
                    found = await vault.get_tokens(*where)
                    assert found is not None
                    served.append(found.access_token)
                return served

    assert asyncio.run(scenario()) == ["v2", "v2"]


@pytest.mark.parametrize("flavour", ["sync", "async"])
@pytest.mark.parametrize("where_db", ["postgres_deaf", "sqlite"])
def test_without_a_feed_a_redis_value_is_confirmed_with_the_database(
    postgres_url: str,
    pg: Any,
    redis_url: str,
    raw_redis: Any,
    key: str,
    sqlite_url: str,
    flavour: str,
    where_db: str,
) -> None:
    """Where no feed can run (behind PgBouncer in transaction mode: here the listener is on
    another database; SQLite has none), a Redis value older than the row is refused: another
    process's replayed or late v1 is never served, and Redis is repaired."""
    import asyncio

    from oauthvault import AsyncOAuthTokenCache

    where = ids()
    name = cache_key(TokenKey(*where))
    other = f"oauthvault_listen_{uuid.uuid4().hex[:8]}"
    admin = postgres_url.rsplit("/", 1)[0] + "/postgres"
    if where_db == "sqlite":
        database, extra = sqlite_url, {}
        upgrade(parse_database_url(database))
    else:
        with psycopg.connect(admin, autocommit=True) as connection:
            connection.execute(f'CREATE DATABASE "{other}"')
        database, extra = postgres_url, {"listen_url": admin.rsplit("/", 1)[0] + "/" + other}
    reader_settings = settings(database, redis_url, key, local_cache=False, **extra)
    try:
        with OAuthTokenCache(settings=settings(database, redis_url, key)) as writer:
            writer.store_tokens(*where, "v1", "r", expires_in=3600)
            saved_v1 = raw_redis.get(name)
            writer.store_tokens(*where, "v2", "r", expires_in=3600)
            raw_redis.set(name, saved_v1, ex=3600)  # a replay, or a write that landed late
            if flavour == "sync":
                with OAuthTokenCache(settings=reader_settings) as reader:
                    served = [reader.get_tokens(*where).access_token for _ in range(3)]  # type: ignore[union-attr]
                    info = reader.cache_info()
            else:

                async def read() -> tuple[list[str], Any]:
                    async with AsyncOAuthTokenCache(settings=reader_settings) as reader:
                        found = [await reader.get_tokens(*where) for _ in range(3)]
                        return [t.access_token for t in found if t], reader.cache_info()

                served, info = asyncio.run(read())
    finally:
        if where_db != "sqlite":
            with psycopg.connect(admin, autocommit=True) as connection:
                connection.execute(f'DROP DATABASE IF EXISTS "{other}" WITH (FORCE)')
    assert served == ["v2", "v2", "v2"]
    assert info.refused == 1 and not info.feed_live
    assert int(raw_redis.get(name).split(b":", 1)[0]) > int(saved_v1.split(b":", 1)[0])
