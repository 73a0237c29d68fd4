"""Sealed token rows in PostgreSQL, through psycopg 3 and psycopg_pool.

:class:`AsyncPostgresTokenStore` (in :mod:`oauthvault.storage.postgres_async`, the
hand-written source) and ``PostgresTokenStore`` (in :mod:`oauthvault.storage.postgres`,
generated from it by ``scripts/async_to_sync.py``) hold the store's calls: each is one
statement of :mod:`oauthvault.storage.postgres_sql` run through the
:mod:`~oauthvault.storage.postgres_runner` (pool, reserved connection, outage gate).
Timestamps come from the vault's clock.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import psycopg

from oauthvault.crypto.sealing import SealedRow
from oauthvault.models import ConnectionQuery, StoredConnection, TokenKey
from oauthvault.storage.base import RefreshLease, RefreshSave, Resealer, RotationBatch
from oauthvault.storage.location import DatabaseLocation
from oauthvault.storage.migrations import HEAD_REVISION
from oauthvault.storage.postgres_base import PENDING_GRACE, Clock, PoolSettings, utc_now
from oauthvault.storage.postgres_runner_async import (
    AsyncPostgresRunner,
    fetch_all,
    fetch_one,
    row_count,
)
from oauthvault.storage.postgres_sql import (
    CLAIM_PENDING,
    CLEAR_INVALIDATIONS,
    COUNT_BY_KEY,
    COUNT_BY_STATUS,
    DELETE_ROW,
    EXPIRING,
    IDLE,
    LIST_ROWS,
    LOCK_ROW,
    LOCK_TIMEOUT,
    NIL_UUID,
    NOTIFY,
    PENDING_INVALIDATIONS,
    PUT_PENDING,
    RECORD_INVALIDATIONS,
    RELEASE_LEASE,
    SCHEMA_REVISION,
    SELECT_FOR_ROTATION,
    SELECT_ROW,
    TAKE_LEASE,
    TAKE_PENDING,
    UPDATE_LOCKED_STATUS,
    UPDATE_SEALED,
    UPSERT_ROW,
    check_revision,
    key_params,
    locked_state,
    save_refreshed,
    sealed_row,
    stored_connection,
    upsert_params,
)

__all__ = ["AsyncPostgresLockedRow", "AsyncPostgresTokenStore"]


class AsyncPostgresLockedRow:
    """A row locked by ``SELECT … FOR UPDATE`` in a transaction on a connection of its own;
    made by ``store.lock_row``, which calls :meth:`acquire`."""

    def __init__(self, runner: AsyncPostgresRunner, key: TokenKey, clock: Clock) -> None:
        self._runner = runner
        self._key = key
        self._clock = clock
        self._pool: Any = None
        self._connection: psycopg.AsyncConnection[Any] | None = None
        self.row: SealedRow | None = None
        self.status: str | None = None
        self.lease: RefreshLease | None = None
        self.last_error: str | None = None

    async def acquire(self) -> None:
        """Begin, and lock the row (waiting up to the lock timeout).

        Raises:
            StorageUnavailable: no connection, or the lock or the read failed.
        """
        self._pool, self._connection = await self._runner.checkout()
        found = await self._execute(LOCK_ROW, key_params(self._key), begin=True)
        if found is not None:
            self.row, self.status, self.lease, self.last_error = locked_state(found)

    async def _execute(self, query: str, params: Sequence[Any], *, begin: bool = False) -> Any:
        connection = self._connection
        if connection is None:
            raise RuntimeError("the row is not locked (committed or rolled back already)")
        try:
            if begin:
                await connection.execute("BEGIN")
                await connection.execute(LOCK_TIMEOUT)
            cursor = await connection.execute(query, params)
            return await cursor.fetchone() if cursor.description else None
        except psycopg.Error as error:
            failure = self._runner.failure(error, self._pool, connection)
            await self.rollback()
            raise failure from None
        except BaseException:  # interrupted mid-statement: never keep it (or the lock)
            self._connection = None
            await self._runner.check_in(self._pool, connection, discard=True)
            raise

    async def update(self, *, status: str, last_error: str | None) -> None:
        """Write a new status inside the lock."""
        now = self._clock()
        await self._execute(UPDATE_LOCKED_STATUS, (status, last_error, now, *key_params(self._key)))

    async def take_lease(self, lease: RefreshLease) -> int:
        """Lease the row (moving its version); returns the new version."""
        found = await self._execute(TAKE_LEASE, (lease.owner, lease.until, *key_params(self._key)))
        return int(found[0])

    async def commit(self) -> None:
        connection, self._connection = self._connection, None
        if connection is None:
            return
        try:
            await connection.execute("COMMIT")
        except psycopg.Error as error:
            raise self._runner.failure(error, self._pool, connection) from None
        finally:
            await self._runner.check_in(self._pool, connection)

    async def rollback(self) -> None:
        """Roll back; never raises (a lost connection has rolled back already)."""
        connection, self._connection = self._connection, None
        if connection is None:
            return
        try:
            await connection.execute("ROLLBACK")
        except psycopg.Error:
            pass  # a lost connection has rolled back already; the pool discards it
        finally:
            await self._runner.check_in(self._pool, connection)


class AsyncPostgresTokenStore:
    """Sealed token rows in PostgreSQL.

    ``connect_timeout`` bounds each new connection, ``pool_timeout`` the wait for a pooled
    one. After a connection breaks, calls fail at once (``StorageUnavailable``) while the
    server is away, and the first one after it is back succeeds on a new pool. The asyncio
    store connects in ``await store.open()``; the blocking one when it is made.

    Raises:
        StorageUnavailable: the server cannot be reached in ``connect_timeout`` seconds,
            or its schema is not at this version's revision.
    """

    def __init__(
        self,
        location: DatabaseLocation,
        *,
        min_size: int = 1,
        max_size: int = 10,
        connect_timeout: float = 3.0,
        pool_timeout: float = 3.0,
        clock: Clock = utc_now,
    ) -> None:
        settings = PoolSettings(
            location,
            connect_timeout=connect_timeout,
            pool_timeout=pool_timeout,
            min_size=min_size,
            max_size=max_size,
        )
        self._runner = AsyncPostgresRunner(settings)
        self._clock = clock
        self._opened = False
        if True:  # ASYNC
            pass  # an event loop cannot block here: `await store.open()` connects
        else:
            self.open()

    @property
    def description(self) -> str:
        """Where the data lives, with no password (for logs and ``doctor``)."""
        return self._runner.description

    async def open(self) -> None:
        """Check the schema on a direct connection, then open the pool (once).

        Raises:
            StorageUnavailable: the server cannot be reached, or the schema is not at this
                version's revision (:class:`SchemaOutdated`).
        """
        if self._opened:
            return
        try:
            found = await self._runner.fetch_direct(SCHEMA_REVISION)
        except psycopg.errors.UndefinedTable:
            found = None
        revision = found[0] if found else None
        if revision != HEAD_REVISION:
            check_revision(revision, self.description)
        await self._runner.open()
        self._opened = True

    async def _fetchone(self, query: str, params: Sequence[Any], *, retry: bool = True) -> Any:
        return await self._runner.run(query, params, fetch_one, retry=retry)

    async def _fetchall(self, query: str, params: Sequence[Any] | dict[str, Any]) -> list[Any]:
        return await self._runner.run(query, params, fetch_all, retry=True)

    async def _rowcount(self, query: str, params: Sequence[Any], *, retry: bool = True) -> int:
        return await self._runner.run(query, params, row_count, retry=retry)

    async def get(self, key: TokenKey) -> SealedRow | None:
        found = await self._fetchone(SELECT_ROW, key_params(key))
        return None if found is None else sealed_row(found)

    async def upsert(self, key: TokenKey, row: SealedRow) -> int:
        found = await self._fetchone(UPSERT_ROW, upsert_params(key, row, self._clock()))
        return int(found[0])

    async def delete(self, key: TokenKey) -> int | None:
        # Not retried: a delete that did commit before its connection broke would then
        # report that nothing was stored.
        found = await self._fetchone(DELETE_ROW, key_params(key), retry=False)
        return None if found is None else int(found[0])

    async def list_connections(self, query: ConnectionQuery) -> list[StoredConnection]:
        rows = await self._fetchall(LIST_ROWS, query.params())
        return [stored_connection(row) for row in rows]

    async def count_by_status(self) -> dict[tuple[str, str], int]:
        return {(p, s): n for p, s, n in await self._fetchall(COUNT_BY_STATUS, ())}

    async def schema_revision(self) -> str | None:
        found = await self._fetchone(SCHEMA_REVISION, ())
        return None if found is None else str(found[0])

    async def count_by_key_id(self) -> dict[str, int]:
        return {key_id: count for key_id, count in await self._fetchall(COUNT_BY_KEY, ())}

    async def reseal_batch(
        self, primary_key_id: str, after_row_id: str | None, limit: int, reseal: Resealer
    ) -> RotationBatch:
        """Re-seal up to ``limit`` rows not sealed with ``primary_key_id`` (after
        ``after_row_id``, in id order) in one transaction."""
        rotated: list[TokenKey] = []
        failed: list[TokenKey] = []
        last_row_id = None
        after = uuid.UUID(after_row_id) if after_row_id else NIL_UUID
        async with self._runner.transaction() as connection:
            cursor = await connection.execute(SELECT_FOR_ROTATION, (primary_key_id, after, limit))
            for row_id, provider, workspace_id, actor_id, *sealed in await cursor.fetchall():
                last_row_id = str(row_id)
                key = TokenKey(provider, workspace_id, actor_id)
                new = reseal(key, sealed_row(sealed))
                if new is None:
                    failed.append(key)
                    continue
                await connection.execute(
                    UPDATE_SEALED,
                    (
                        new.access_token_encrypted,
                        new.refresh_token_encrypted,
                        new.key_id,
                        new.response_encrypted,
                        row_id,
                    ),
                )
                rotated.append(key)
        return RotationBatch(rotated, failed, last_row_id)

    async def record_invalidations(self, cache_keys: Sequence[str]) -> None:
        await self._rowcount(RECORD_INVALIDATIONS, (list(cache_keys), self._clock()))

    async def pending_invalidations(self, limit: int) -> list[str]:
        return [row[0] for row in await self._fetchall(PENDING_INVALIDATIONS, (limit,))]

    async def clear_invalidations(self, cache_keys: list[str]) -> None:
        await self._rowcount(CLEAR_INVALIDATIONS, (cache_keys,))

    async def lock_row(self, key: TokenKey) -> AsyncPostgresLockedRow:
        locked = AsyncPostgresLockedRow(self._runner, key, self._clock)
        await locked.acquire()
        return locked

    async def notify(self, channel: str, payload: str) -> None:
        """``NOTIFY`` through the pool (the change feed's probe goes the way writes go)."""
        await self._fetchone(NOTIFY, (channel, payload), retry=False)

    async def release_lease(self, key: TokenKey, owner: str) -> None:
        await self._rowcount(RELEASE_LEASE, (*key_params(key), owner))

    async def save_refreshed(
        self, key: TokenKey, row: SealedRow | None, save: RefreshSave
    ) -> int | None:
        query, params = save_refreshed(key, row, save, self._clock())
        # Not retried here: the refresh flow retries it, guarded, for as long as it may.
        found = await self._fetchone(query, params, retry=False)
        return None if found is None else int(found[0])

    async def expiring_connections(self, before: datetime, limit: int) -> list[TokenKey]:
        return [TokenKey(*row) for row in await self._fetchall(EXPIRING, (before, limit))]

    async def idle_connections(self, provider: str, before: datetime, limit: int) -> list[TokenKey]:
        rows = await self._fetchall(IDLE, (provider, before, limit))
        return [TokenKey(*row) for row in rows]

    async def put_pending(self, record_id: str, sealed: str, expires_at: datetime) -> None:
        params = (self._clock() - PENDING_GRACE, record_id, sealed, expires_at)
        await self._rowcount(PUT_PENDING, params, retry=False)

    async def take_pending(self, record_id: str) -> tuple[str, datetime] | None:
        found = await self._fetchone(TAKE_PENDING, (record_id,), retry=False)
        return None if found is None else (found[0], found[1].astimezone(UTC))

    async def claim_pending(self, record_id: str, expires_at: datetime) -> bool:
        # Not retried: a claim that did commit before its connection broke would then
        # report the record as used.
        params = (self._clock() - PENDING_GRACE, record_id, expires_at)
        return await self._rowcount(CLAIM_PENDING, params, retry=False) == 1

    async def close(self) -> None:
        await self._runner.close()
        self._opened = False

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.description!r})"
