"""Refresh and storage while a private PostgreSQL is restarted, stopped, killed, or has its
sessions terminated, against the real local provider (which rotates refresh tokens and
revokes the whole grant when a used one comes back).

Nothing here asserts a speed; each test prints its figures (``FIGURES …``) for the notes:
``pytest -s -k database_faults tests/vault/test_database_faults.py``.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest

from oauthvault import (
    AsyncOAuthTokenCache,
    OAuthTokenCache,
    ReauthorizationRequired,
    StorageUnavailable,
)
from oauthvault.config import Settings
from oauthvault.providers.config import load_provider_configs
from oauthvault.refresher import BackgroundRefresher
from oauthvault.storage.location import parse_database_url
from oauthvault.storage.migrations import upgrade

from tests.helpers.db_load import hammer
from tests.helpers.oidc_server import OIDCServer
from tests.helpers.postgres_server import PostgresServer
from tests.helpers.waiting import wait_for

# A private PostgreSQL per module, restarted, stopped and killed.
pytestmark = pytest.mark.slow

PROVIDER_DELAY_MS = 3000  # the provider answers refreshes this late


@pytest.fixture(scope="module")
def server() -> Iterator[PostgresServer]:
    private = PostgresServer()
    private.start()
    try:
        yield private
    finally:
        private.close()


@pytest.fixture
def database(server: PostgresServer) -> str:
    """A fresh, migrated database on the private server (which the test may break)."""
    if server.process is None:
        server.start()
    url = server.create_database(f"faults_{uuid.uuid4().hex[:10]}")
    upgrade(parse_database_url(url))
    return url


def ids() -> tuple[str, str, str]:
    return ("local", f"ws_{uuid.uuid4().hex[:8]}", "user")


def settings(url: str, key: str, **extra: Any) -> Settings:
    return Settings.load(database_url=url, redis_url="", oauth_encryption_key=key, **extra)


def vault(url: str, key: str, providers: Path, **options: Any) -> OAuthTokenCache:
    configs = load_provider_configs(providers, {})
    return OAuthTokenCache(settings=settings(url, key), providers=configs, **options)


def store_expiring(url: str, key: str, where: tuple[str, str, str], grant: tuple[str, str]) -> None:
    """A one-hour token with 5 s left: any min_ttl above 5 refreshes it."""

    def behind() -> datetime:
        return datetime.now(UTC) - timedelta(seconds=3595)

    with OAuthTokenCache(settings=settings(url, key), clock=behind) as v:
        v.store_tokens(*where, grant[0], grant[1], expires_in=3600, scope="openid")


def in_thread(work: Callable[[], Any]) -> tuple[threading.Thread, dict[str, Any]]:
    outcome: dict[str, Any] = {}

    def run() -> None:
        started = time.monotonic()
        try:
            outcome["value"] = work()
        except Exception as error:  # reported to the test
            outcome["error"] = error
        outcome["seconds"] = time.monotonic() - started

    thread = threading.Thread(target=run)
    thread.start()
    return thread, outcome


# --- a refresh in flight while the database goes away ------------------------------------


def _refresh_with(driver: str, url: str, key: str, providers: Path, where: Any) -> Any:
    configs = load_provider_configs(providers, {})
    if driver == "sync":
        with OAuthTokenCache(settings=settings(url, key), providers=configs) as v:
            return v.get_access_token(*where)
    if driver == "async":

        async def run() -> str:
            async with AsyncOAuthTokenCache(settings=settings(url, key), providers=configs) as v:
                return await v.get_access_token(*where)

        return asyncio.run(run())
    with OAuthTokenCache(settings=settings(url, key), providers=configs) as v:
        done = BackgroundRefresher(v, lead_time=300).run_once()
        assert done.failed == [], done.failed
        return v.get_stored_tokens(*where).access_token  # type: ignore[union-attr]


@pytest.mark.parametrize("driver", ["sync", "async", "worker"])
@pytest.mark.parametrize("fault", ["restart", "outage"])
def test_a_refresh_in_flight_survives_the_database_going_away(
    op: OIDCServer,
    grant: tuple[str, str],
    providers_file: Path,
    server: PostgresServer,
    database: str,
    key: str,
    driver: str,
    fault: str,
) -> None:
    """restart: ``pg_ctl restart -m fast`` 0.5 s after the request reached the provider,
    back before it answers. outage: stopped then, started 2 s after the provider answered:
    the new tokens wait in memory and are saved when the database is back."""
    where = ids()
    store_expiring(database, key, where, grant)
    op.fail(delay_ms=PROVIDER_DELAY_MS)
    thread, outcome = in_thread(lambda: _refresh_with(driver, database, key, providers_file, where))
    wait_for(lambda: op.stats().get("refresh_token", 0) == 1, 20)
    time.sleep(0.5)
    if fault == "restart":
        back = server.restart()
    else:
        server.stop()
        time.sleep(PROVIDER_DELAY_MS / 1000 + 2)
        back = server.start()
    thread.join(timeout=60)
    finished = time.monotonic()
    assert "error" not in outcome, repr(outcome.get("error"))
    new_access = outcome["value"]
    assert new_access != grant[0]
    with vault(database, key, providers_file) as check:
        stored = check.get_stored_tokens(*where)
        assert stored is not None and stored.access_token == new_access
        assert stored.refresh_token != grant[1]  # the rotated one was saved
        [row] = check.list_connections(workspace_id=where[1])
        assert row.status == "active" and row.last_error is None
        again = check.refresh_tokens(*where)  # would revoke the grant if the old one came back
        assert again.access_token != new_access
    stats = op.stats()
    assert stats.get("refresh_token_ok") == 2 and stats.get("refresh_token_failed", 0) == 0
    print(
        f"FIGURES fault={fault} driver={driver} grants={stats['refresh_token']} "
        f"errors=0 saved_after_database_back={max(0.0, finished - back):.2f}s "
        f"refresh_took={outcome['seconds']:.2f}s"
    )


def test_sessions_terminated_mid_refresh_while_another_caller_waits(
    op: OIDCServer,
    grant: tuple[str, str],
    providers_file: Path,
    server: PostgresServer,
    database: str,
    key: str,
) -> None:
    """The first refresher's connection is killed while its request is at the provider: a
    second caller finds the lease (committed before the call) and waits for the result
    instead of sending the same, already used, refresh token."""
    where = ids()
    store_expiring(database, key, where, grant)
    op.fail(delay_ms=2000)

    def first_caller() -> str:
        with vault(database, key, providers_file) as first_vault:
            return first_vault.get_access_token(*where)

    first, first_outcome = in_thread(first_caller)
    wait_for(lambda: op.stats().get("refresh_token", 0) == 1, 20)
    terminated = server.terminate_backends(database.rsplit("/", 1)[-1])
    with vault(database, key, providers_file) as second_vault:
        second, second_outcome = in_thread(lambda: second_vault.get_access_token(*where))
        first.join(timeout=30)
        second.join(timeout=30)
    assert "error" not in first_outcome, repr(first_outcome.get("error"))
    assert "error" not in second_outcome, repr(second_outcome.get("error"))
    assert first_outcome["value"] == second_outcome["value"] != grant[0]
    stats = op.stats()
    assert stats["refresh_token"] == 1 and stats.get("refresh_token_failed", 0) == 0
    with vault(database, key, providers_file) as check:
        assert check.refresh_tokens(*where).access_token != first_outcome["value"]  # alive
    print(
        f"FIGURES terminated_sessions={terminated} grants=1 reuse=0 "
        f"waiter_took={second_outcome['seconds']:.2f}s"
    )


def test_new_tokens_that_cannot_be_saved_in_time_are_reported(
    op: OIDCServer,
    grant: tuple[str, str],
    providers_file: Path,
    server: PostgresServer,
    database: str,
    key: str,
) -> None:
    """The database stays away longer than the save window: the caller gets
    StorageUnavailable and a ``refresh_lost`` event; the lease left on the row makes the
    next refresher record the abandoned refresh instead of the connection staying silently
    active."""
    where = ids()
    store_expiring(database, key, where, grant)
    events: list[Any] = []
    configs = load_provider_configs(providers_file, {})
    short = settings(database, key, refresh_save_window=1.0)
    op.fail(delay_ms=1500)
    lost = OAuthTokenCache(settings=short, providers=configs, on_event=events.append)
    thread, outcome = in_thread(lambda: lost.get_access_token(*where))
    wait_for(lambda: op.stats().get("refresh_token", 0) == 1, 20)
    server.stop()
    thread.join(timeout=30)
    lost.close()
    server.start()
    assert isinstance(outcome.get("error"), StorageUnavailable), outcome
    assert [event.kind for event in events] == ["refresh_lost"]
    assert grant[1] not in repr(events) and grant[1] not in str(outcome["error"])

    later: list[Any] = []

    def after_the_lease() -> datetime:
        return datetime.now(UTC) + timedelta(hours=1)

    with OAuthTokenCache(
        settings=settings(database, key),
        providers=configs,
        clock=after_the_lease,
        on_event=later.append,
    ) as next_vault:
        with pytest.raises(ReauthorizationRequired):  # the used refresh token came back
            next_vault.get_access_token(*where)
        [row] = next_vault.list_connections(workspace_id=where[1])
    assert [event.kind for event in later] == ["refresh_abandoned", "status_changed"]
    assert row.status == "needs_reauth"
    assert row.last_error is not None and "ended without saving" in row.last_error
    print(f"FIGURES lost_after_save_window=1s events={[e.kind for e in events + later]}")


# --- every path, typed, with the database down; then back fast --------------------------


def _every_call(v: OAuthTokenCache, where: tuple[str, str, str]) -> dict[str, Callable[[], Any]]:
    return {
        "store_tokens": lambda: v.store_tokens(*where, "a", "r", expires_in=60),
        "get_tokens": lambda: v.get_tokens(*where),
        "get_stored_tokens": lambda: v.get_stored_tokens(*where),
        "get_token_response": lambda: v.get_token_response(*where),
        "get_access_token (refresh: lock path)": lambda: v.get_access_token(*where, min_ttl=120),
        "refresh_tokens": lambda: v.refresh_tokens(*where),
        "delete_tokens": lambda: v.delete_tokens(*where),
        "list_connections": lambda: v.list_connections(),
        "expiring_connections": lambda: v.expiring_connections(60),
        "count_by_key_id": lambda: v.count_by_key_id(),
        "rotate_key": lambda: v.rotate_key(),
        "pending save": lambda: v.pending_records("state", 60).save({"x": 1}),
        "pending take": lambda: v.pending_records("state", 60).take("a" * 43),
    }


@pytest.mark.parametrize("how", ["stopped", "killed"])
def test_every_call_fails_typed_while_the_database_is_down_and_works_right_after(
    providers_file: Path, server: PostgresServer, database: str, key: str, how: str
) -> None:
    where = ids()
    with vault(database, key, providers_file) as v:
        v.store_tokens(*where, "access", "refresh", expires_in=60)
        if how == "stopped":
            server.stop()
        else:
            server.kill()
        failures: dict[str, float] = {}
        for name, call in _every_call(v, where).items():
            started = time.monotonic()
            with pytest.raises(StorageUnavailable, match="PostgreSQL") as caught:
                call()
                pytest.fail(f"{name} did not raise")
            failures[name] = time.monotonic() - started
            assert "refresh" not in repr(caught.value.__cause__ or "")  # no psycopg chained
        back = server.start()
        recovered = None
        while recovered is None:
            try:
                v.get_stored_tokens(*where)
                recovered = time.monotonic() - back
            except StorageUnavailable:
                time.sleep(0.01)
        assert v.get_stored_tokens(*where).access_token == "access"  # type: ignore[union-attr]
    slowest = max(failures, key=failures.__getitem__)
    print(
        f"FIGURES down={how} calls={len(failures)} all StorageUnavailable "
        f"slowest_failure={slowest}:{failures[slowest]:.3f}s recovered_after={recovered:.3f}s"
    )


def test_the_async_vault_fails_typed_while_down_and_works_right_after(
    server: PostgresServer, database: str, key: str
) -> None:
    where = ids()

    async def scenario() -> tuple[int, float]:
        async with AsyncOAuthTokenCache(settings=settings(database, key)) as v:
            await v.store_tokens(*where, "access", "refresh", expires_in=60)
            server.stop()
            calls = [
                lambda: v.store_tokens(*where, "a", "r", expires_in=60),
                lambda: v.get_tokens(*where),
                lambda: v.get_access_token(*where, min_ttl=120),
                lambda: v.refresh_tokens(*where),
                lambda: v.delete_tokens(*where),
                lambda: v.list_connections(),
                lambda: v.expiring_connections(60),
                lambda: v.count_by_key_id(),
            ]
            for call in calls:
                with pytest.raises(StorageUnavailable):
                    await call()
            back = server.start()
            while True:
                try:
                    found = await v.get_tokens(*where)
                    break
                except StorageUnavailable:
                    await asyncio.sleep(0.01)
            assert found is not None and found.access_token == "access"
            return len(calls), time.monotonic() - back

    calls, recovered = asyncio.run(scenario())
    print(f"FIGURES async down=stopped calls={calls} recovered_after={recovered:.3f}s")


def test_a_killed_postmaster_under_load_from_four_processes(
    server: PostgresServer, database: str, key: str
) -> None:
    """SIGKILL the postmaster while four processes store and read: only
    StorageUnavailable, every acknowledged store is there afterwards, and each process
    works again soon after the server is back (figures printed, not asserted)."""
    context = multiprocessing.get_context("spawn")
    go, ready, results = context.Event(), context.Queue(), context.Queue()
    duration = 6.0
    processes = [
        context.Process(target=hammer, args=(database, key, f"p{n}", duration, go, ready, results))
        for n in range(4)
    ]
    for process in processes:
        process.start()
    for _ in processes:
        ready.get(timeout=60)
    go.set()
    time.sleep(2.0)
    killed_at = time.time()
    server.kill()
    time.sleep(1.0)
    server.start()
    back_at = time.time()
    outcomes = [results.get(timeout=120) for _ in processes]
    for process in processes:
        process.join(timeout=30)
    errors: dict[str, int] = {}
    acknowledged: list[str] = []
    recoveries = []
    for outcome in outcomes:
        for name, count in outcome["errors"].items():
            errors[name] = errors.get(name, 0) + count
        acknowledged.extend(outcome["stored"])
        after = [t for t in outcome["successes"] if t >= back_at]
        assert after, "the process never worked again"
        recoveries.append(after[0] - back_at)
    assert set(errors) <= {"StorageUnavailable"}, errors
    assert errors, "the kill was not noticed"
    with psycopg.connect(database) as connection:
        present = {
            row[0]
            for row in connection.execute(
                "SELECT workspace_id FROM oauth_tokens WHERE provider = 'load'"
            )
        }
    missing = [name for name in acknowledged if name not in present]
    assert missing == [], f"{len(missing)} acknowledged stores are missing"
    print(
        f"FIGURES sigkill processes=4 acknowledged_stores={len(acknowledged)} missing=0 "
        f"errors={errors} down_for={back_at - killed_at:.2f}s "
        f"recovery_after_back=max {max(recoveries):.3f}s median "
        f"{sorted(recoveries)[len(recoveries) // 2]:.3f}s"
    )


def test_readiness_names_the_database_and_the_local_cache(
    server: PostgresServer, database: str, key: str
) -> None:
    with OAuthTokenCache(settings=settings(database, key)) as v:
        deadline = time.monotonic() + 10
        while v.readiness().local_cache != "live":
            assert time.monotonic() < deadline
            time.sleep(0.01)
        ready = v.readiness()
        assert ready.ready and ready.database == "up" and ready.cache == "off"
        server.stop()
        down = v.readiness()
        assert not down.ready and down.database == "down"
        assert down.as_dict()["status"] == "not_ready"
        server.start()
        deadline = time.monotonic() + 10
        while not v.readiness().ready:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        with psycopg.connect(database, autocommit=True) as connection:
            connection.execute("UPDATE alembic_version SET version_num = '0001'")
        old = v.readiness()
        assert not old.ready and old.database == "old_schema"


def test_the_async_vault_becomes_ready_once_the_database_is_back(
    server: PostgresServer, database: str, key: str
) -> None:
    """An async vault whose first open failed (the database was down) opens later: its
    readiness goes from down to ready by itself."""

    async def scenario() -> tuple[str, bool]:
        server.stop()
        vault = AsyncOAuthTokenCache(settings=settings(database, key))
        try:
            first = await vault.readiness()
            server.start()
            deadline = time.monotonic() + 10
            while not (await vault.readiness()).ready:
                assert time.monotonic() < deadline
                await asyncio.sleep(0.05)
            return first.database, True
        finally:
            await vault.aclose()

    database_state, ready = asyncio.run(scenario())
    assert database_state == "down" and ready
