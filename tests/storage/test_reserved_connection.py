"""The PostgreSQL stores' reserved connection: one pooled connection kept out of the pool
for whichever call finds it free. Calls from many threads (or tasks) at once still get the
right rows, a reserved connection killed under the store is replaced without an error, and
closing the store closes it (real PostgreSQL)."""

from __future__ import annotations

import asyncio
import threading
import time

import psycopg
import pytest

from oauthvault import AsyncOAuthTokenCache, OAuthTokenCache

THREADS = 8
ROUNDS = 40


def _other_sessions(pg: psycopg.Connection) -> list[int]:
    """The pids of the sessions on this database other than ``pg``'s own."""
    rows = pg.execute(
        "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
        "AND pid <> pg_backend_pid() AND backend_type = 'client backend'"
    ).fetchall()
    return [pid for (pid,) in rows]


def _wait_for_no_sessions(pg: psycopg.Connection, timeout: float = 20.0) -> list[int]:
    # Generous: a loaded machine (the suite runs four sessions side by side) may take
    # seconds to end a closed pool's backends.
    deadline = time.monotonic() + timeout
    while (left := _other_sessions(pg)) and time.monotonic() < deadline:
        time.sleep(0.05)
    return left


def test_threads_at_once_each_read_their_own_writes(
    postgres_url: str, key: str, pg: psycopg.Connection
) -> None:
    vault = OAuthTokenCache(postgres_url, None, key, local_cache=False)
    wrong: list[str] = []
    errors: list[BaseException] = []
    start = threading.Barrier(THREADS)

    def work(thread: int) -> None:
        try:
            start.wait()
            for round_ in range(ROUNDS):
                token = f"access-{thread}-{round_}"
                vault.store_tokens("google", "ws", f"user-{thread}", token, None, 3600)
                found = vault.get_tokens("google", "ws", f"user-{thread}")
                if found is None or found.access_token != token:
                    wrong.append(f"thread {thread} round {round_}")
        except BaseException as error:  # reported below
            errors.append(error)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors
    assert not wrong
    # More than one connection served them (the reserved one was busy for some calls),
    # and never more than the pool allows beside the reserved one.
    assert 1 < len(_other_sessions(pg)) <= 11
    vault.close()
    assert _wait_for_no_sessions(pg) == []


def test_a_killed_reserved_connection_is_replaced_without_an_error(
    postgres_url: str, key: str, pg: psycopg.Connection
) -> None:
    with OAuthTokenCache(postgres_url, None, key, local_cache=False) as vault:
        vault.store_tokens("google", "ws", "user", "before", None, 3600)
        killed = pg.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid() "
            "AND backend_type = 'client backend'"
        ).fetchone()
        assert killed is not None and killed[0] >= 1
        # The store and the read are retried once on a new pool: no StorageUnavailable.
        vault.store_tokens("google", "ws", "user", "after", None, 3600)
        found = vault.get_tokens("google", "ws", "user")
        assert found is not None and found.access_token == "after"
    assert _wait_for_no_sessions(pg) == []


def test_async_tasks_at_once_each_read_their_own_writes(
    postgres_url: str, key: str, pg: psycopg.Connection
) -> None:
    async def scenario() -> list[str]:
        wrong: list[str] = []
        async with AsyncOAuthTokenCache(postgres_url, None, key, local_cache=False) as vault:

            async def work(task: int) -> None:
                for round_ in range(ROUNDS):
                    token = f"access-{task}-{round_}"
                    await vault.store_tokens("google", "ws", f"user-{task}", token, None, 3600)
                    found = await vault.get_tokens("google", "ws", f"user-{task}")
                    if found is None or found.access_token != token:
                        wrong.append(f"task {task} round {round_}")

            await asyncio.gather(*(work(n) for n in range(THREADS)))
            assert 1 < len(_other_sessions(pg)) <= 11
        return wrong

    assert asyncio.run(scenario()) == []
    assert _wait_for_no_sessions(pg) == []


def test_an_async_call_cancelled_mid_statement_gives_its_connection_back(
    postgres_url: str, key: str, pg: psycopg.Connection
) -> None:
    async def scenario() -> str | None:
        async with AsyncOAuthTokenCache(postgres_url, None, key, local_cache=False) as vault:
            await vault.store_tokens("google", "ws", "user", "kept", None, 3600)
            # A row lock held elsewhere keeps the next store waiting inside its statement.
            with psycopg.connect(postgres_url) as blocker:
                blocker.execute("SELECT 1 FROM oauth_tokens FOR UPDATE")
                waiting = asyncio.ensure_future(
                    vault.store_tokens("google", "ws", "user", "cancelled", None, 3600)
                )
                await asyncio.sleep(0.5)
                waiting.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await waiting
                blocker.rollback()
            found = await vault.get_tokens("google", "ws", "user")
            return None if found is None else found.access_token

    assert asyncio.run(scenario()) == "kept"
    assert _wait_for_no_sessions(pg) == []
