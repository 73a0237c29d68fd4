"""PostgreSQL for the asyncio vault: the twin of :mod:`oauthvault.storage.postgres`.

The same SQL and row conversions (:mod:`oauthvault.storage.postgres_sql`), awaited.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

import psycopg
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from oauthvault.crypto.sealing import SealedRow
from oauthvault.errors import StorageUnavailable
from oauthvault.models import ConnectionQuery, StoredConnection, TokenKey
from oauthvault.storage.base import RefreshLease, RefreshSave
from oauthvault.storage.location import DatabaseLocation
from oauthvault.storage.migrations import HEAD_REVISION
from oauthvault.storage.postgres import (
    PENDING_GRACE,
    RESERVED_FOR,
    Clock,
    PostgresBase,
    utc_now,
)
from oauthvault.storage.postgres_sql import (
    CLEAR_INVALIDATIONS,
    COUNT_BY_KEY,
    COUNT_BY_STATUS,
    DELETE_ROW,
    EXPIRING,
    IDLE,
    LIST_ROWS,
    LOCK_ROW,
    LOCK_TIMEOUT,
    NOTIFY,
    PENDING_INVALIDATIONS,
    PUT_PENDING,
    RECORD_INVALIDATIONS,
    RELEASE_LEASE,
    SCHEMA_REVISION,
    SELECT_ROW,
    TAKE_LEASE,
    TAKE_PENDING,
    UPDATE_LOCKED_STATUS,
    UPSERT_ROW,
    check_revision,
    key_params,
    locked_state,
    save_refreshed,
    sealed_row,
    stored_connection,
    upsert_params,
)

__all__ = ["AsyncPostgresTokenStore"]

T = TypeVar("T")


async def _one(cursor: psycopg.AsyncCursor[Any]) -> Any:
    return await cursor.fetchone()


async def _all(cursor: psycopg.AsyncCursor[Any]) -> list[Any]:
    return await cursor.fetchall()


async def _count(cursor: psycopg.AsyncCursor[Any]) -> int:
    return cursor.rowcount


class AsyncPostgresLockedRow:
    """The asyncio twin of :class:`PostgresLockedRow`; built by ``await store.lock_row``."""

    def __init__(self, store: AsyncPostgresTokenStore, key: TokenKey) -> None:
        self._store = store
        self._key = key
        self._pool: AsyncConnectionPool | None = None
        self._connection: psycopg.AsyncConnection[Any] | None = None
        self.row: SealedRow | None = None
        self.status: str | None = None
        self.lease: RefreshLease | None = None

    async def acquire(self) -> None:
        self._pool = await self._store._usable_pool()
        try:
            self._connection = await self._pool.getconn()
        except psycopg.Error as error:  # PoolTimeout, PoolClosed (a pool just replaced)
            raise self._store._failed(error, self._pool) from None
        try:
            await self._connection.execute("BEGIN")
            await self._connection.execute(LOCK_TIMEOUT)
            cursor = await self._connection.execute(LOCK_ROW, key_params(self._key))
            found = await cursor.fetchone()
        except psycopg.Error as error:
            failure = self._store._failed(error, self._pool, self._connection)
            await self.rollback()
            raise failure from None
        except BaseException:  # cancelled: never keep the connection (or the lock)
            await self._discard()
            raise
        if found is not None:
            self.row, self.status, self.lease = locked_state(found)

    async def _execute(self, query: str, params: Sequence[Any]) -> Any:
        assert self._connection is not None  # noqa: S101 - acquire() ran
        try:
            cursor = await self._connection.execute(query, params)
            return await cursor.fetchone() if cursor.description else None
        except psycopg.Error as error:
            failure = self._store._failed(error, self._pool, self._connection)
            await self.rollback()
            raise failure from None
        except BaseException:
            await self._discard()
            raise

    async def _discard(self) -> None:
        """After a cancellation mid-statement: the connection's state is unknown, so it is
        closed (rolling back, releasing the lock) and handed back for the pool to drop."""
        connection, self._connection = self._connection, None
        if connection is not None and self._pool is not None:
            await connection.close()
            await self._pool.putconn(connection)

    async def update(self, *, status: str, last_error: str | None) -> None:
        now = self._store._clock()
        await self._execute(UPDATE_LOCKED_STATUS, (status, last_error, now, *key_params(self._key)))

    async def take_lease(self, lease: RefreshLease) -> int:
        found = await self._execute(TAKE_LEASE, (lease.owner, lease.until, *key_params(self._key)))
        return int(found[0])

    async def commit(self) -> None:
        connection, self._connection = self._connection, None
        if connection is None or self._pool is None:
            return
        try:
            await connection.execute("COMMIT")
        except psycopg.Error as error:
            raise self._store._failed(error, self._pool, connection) from None
        finally:
            await self._pool.putconn(connection)

    async def rollback(self) -> None:
        connection, self._connection = self._connection, None
        if connection is None or self._pool is None:
            return
        try:
            await connection.execute("ROLLBACK")
        except psycopg.Error:
            pass  # a lost connection has rolled back already; the pool discards it
        finally:
            await self._pool.putconn(connection)


class AsyncPostgresTokenStore(PostgresBase):
    """The asyncio twin of :class:`PostgresTokenStore`; call :meth:`open` first."""

    _pool: AsyncConnectionPool

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
        super().__init__(
            location,
            clock,
            connect_timeout=connect_timeout,
            pool_timeout=pool_timeout,
            min_size=min_size,
            max_size=max_size,
        )
        self._swap_lock: asyncio.Lock | None = None
        self._closing: set[asyncio.Task[None]] = set()
        self._pool = self._new_pool()
        # The reserved connection (as PostgresTokenStore's): a task takes it when no
        # other task is using it; one event loop, so a flag is the lock.
        self._reserved_busy = False
        self._reserved: psycopg.AsyncConnection[Any] | None = None
        self._reserved_pool: AsyncConnectionPool | None = None
        self._reserved_until = 0.0

    def _new_pool(self) -> AsyncConnectionPool:
        return AsyncConnectionPool(
            self._location.conninfo, **self._pool_arguments("oauthvault-async")
        )

    async def open(self) -> None:
        # As PostgresTokenStore: one direct connection first, for the reason of a failure.
        try:
            async with await psycopg.AsyncConnection.connect(
                self._location.conninfo, **self._options
            ) as connection:
                found = await (await connection.execute(SCHEMA_REVISION)).fetchone()
                revision = found[0] if found else None
        except psycopg.errors.UndefinedTable:
            revision = None
        except psycopg.Error as error:
            raise self._unavailable(error) from None
        if revision != HEAD_REVISION:
            check_revision(revision, self.description)
        try:
            await self._pool.open(wait=True, timeout=self._connect_timeout)
        except (psycopg.Error, PoolTimeout) as error:
            await self._discard_pool()
            raise self._unavailable(error) from None

    async def _discard_pool(self) -> None:
        """Close a pool that failed to open, and make a new one, so that ``open`` can be
        tried again later (a closed psycopg pool cannot be reopened)."""
        await self._pool.close()
        self._pool = self._new_pool()

    async def _usable_pool(self) -> AsyncConnectionPool:
        """As :meth:`PostgresTokenStore._usable_pool`."""
        if self._gate.is_open:
            return self._pool
        if not self._gate.claim_probe():
            raise self._still_down()
        if self._swap_lock is None:
            self._swap_lock = asyncio.Lock()
        async with self._swap_lock:
            if self._gate.is_open:
                return self._pool
            try:
                probe = await psycopg.AsyncConnection.connect(
                    self._location.conninfo, **self._options
                )
                await probe.close()
            except psycopg.Error as error:
                raise self._unavailable(error) from None
            old, self._pool = self._pool, self._new_pool()
            await self._pool.open(wait=False)
            self._gate.open()
        # Closed aside (see the sync store); the task is kept until it is done.
        closing = asyncio.create_task(old.close())
        self._closing.add(closing)
        closing.add_done_callback(self._closing.discard)
        return self._pool

    async def _run(
        self,
        query: str,
        params: Any,
        read: Callable[[psycopg.AsyncCursor[Any]], Awaitable[T]],
        *,
        retry: bool,
    ) -> T:
        """As :meth:`PostgresTokenStore._run`."""
        for attempt in (1, 2):
            pool = await self._usable_pool()
            try:
                if not self._reserved_busy:
                    self._reserved_busy = True
                    try:
                        return await self._run_reserved(pool, query, params, read)
                    finally:
                        self._reserved_busy = False
                        if self._reserved_pool is not None and self._reserved_pool.closed:
                            await self._give_back_reserved()  # closed meanwhile
                return await self._run_pooled(pool, query, params, read)
            except StorageUnavailable:
                if attempt == 2 or not retry or (self._gate.is_open and self._pool is pool):
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    async def _run_pooled(
        self,
        pool: AsyncConnectionPool,
        query: str,
        params: Any,
        read: Callable[[psycopg.AsyncCursor[Any]], Awaitable[T]],
    ) -> T:
        try:
            connection = await pool.getconn()
        except psycopg.Error as error:  # PoolTimeout, PoolClosed
            raise self._failed(error, pool) from None
        try:
            return await read(await connection.execute(query, params, prepare=True))
        except psycopg.Error as error:
            raise self._failed(error, pool, connection) from None
        finally:
            await pool.putconn(connection)

    async def _run_reserved(
        self,
        pool: AsyncConnectionPool,
        query: str,
        params: Any,
        read: Callable[[psycopg.AsyncCursor[Any]], Awaitable[T]],
    ) -> T:
        """As :meth:`PostgresTokenStore._run_reserved` (the caller set the busy flag)."""
        connection = self._reserved
        if (
            connection is None
            or self._reserved_pool is not pool
            or (time.monotonic() > self._reserved_until)
        ):
            await self._give_back_reserved()
            try:
                connection = await pool.getconn()
            except psycopg.Error as error:  # PoolTimeout, PoolClosed
                raise self._failed(error, pool) from None
            self._reserved, self._reserved_pool = connection, pool
            self._reserved_until = time.monotonic() + RESERVED_FOR
        try:
            return await read(await connection.execute(query, params, prepare=True))
        except psycopg.Error as error:
            failure = self._failed(error, pool, connection)
            await self._give_back_reserved()
            raise failure from None
        except BaseException:  # cancelled mid-statement: the pool resets or replaces it
            await self._give_back_reserved()
            raise

    async def _give_back_reserved(self) -> None:
        connection, pool = self._reserved, self._reserved_pool
        self._reserved = self._reserved_pool = None
        if connection is not None and pool is not None:
            await pool.putconn(connection)  # a closed pool closes it

    async def _fetchone(self, query: str, params: Sequence[Any], *, retry: bool = True) -> Any:
        return await self._run(query, params, _one, retry=retry)

    async def _fetchall(self, query: str, params: Sequence[Any] | dict[str, Any]) -> list[Any]:
        return await self._run(query, params, _all, retry=True)

    async def _rowcount(self, query: str, params: Sequence[Any], *, retry: bool = True) -> int:
        return await self._run(query, params, _count, retry=retry)

    async def get(self, key: TokenKey) -> SealedRow | None:
        found = await self._fetchone(SELECT_ROW, key_params(key))
        return None if found is None else sealed_row(found)

    async def upsert(self, key: TokenKey, row: SealedRow) -> int:
        found = await self._fetchone(UPSERT_ROW, upsert_params(key, row, self._clock()))
        return int(found[0])

    async def delete(self, key: TokenKey) -> int | None:
        found = await self._fetchone(DELETE_ROW, key_params(key), retry=False)
        return None if found is None else int(found[0])

    async def list_connections(self, query: ConnectionQuery) -> list[StoredConnection]:
        rows = await self._fetchall(LIST_ROWS, query.params())
        return [stored_connection(row) for row in rows]

    async def record_invalidations(self, cache_keys: Sequence[str]) -> None:
        await self._rowcount(RECORD_INVALIDATIONS, (list(cache_keys), self._clock()))

    async def count_by_status(self) -> dict[tuple[str, str], int]:
        return {(p, s): n for p, s, n in await self._fetchall(COUNT_BY_STATUS, ())}

    async def schema_revision(self) -> str | None:
        found = await self._fetchone(SCHEMA_REVISION, ())
        return None if found is None else str(found[0])

    async def count_by_key_id(self) -> dict[str, int]:
        return {key_id: count for key_id, count in await self._fetchall(COUNT_BY_KEY, ())}

    async def expiring_connections(self, before: datetime, limit: int) -> list[TokenKey]:
        return [TokenKey(*row) for row in await self._fetchall(EXPIRING, (before, limit))]

    async def idle_connections(self, provider: str, before: datetime, limit: int) -> list[TokenKey]:
        rows = await self._fetchall(IDLE, (provider, before, limit))
        return [TokenKey(*row) for row in rows]

    async def pending_invalidations(self, limit: int) -> list[str]:
        return [row[0] for row in await self._fetchall(PENDING_INVALIDATIONS, (limit,))]

    async def clear_invalidations(self, cache_keys: list[str]) -> None:
        await self._rowcount(CLEAR_INVALIDATIONS, (cache_keys,))

    async def lock_row(self, key: TokenKey) -> AsyncPostgresLockedRow:
        locked = AsyncPostgresLockedRow(self, key)
        await locked.acquire()
        return locked

    async def notify(self, channel: str, payload: str) -> None:
        await self._fetchone(NOTIFY, (channel, payload), retry=False)

    async def release_lease(self, key: TokenKey, owner: str) -> None:
        await self._rowcount(RELEASE_LEASE, (*key_params(key), owner))

    async def save_refreshed(
        self, key: TokenKey, row: SealedRow | None, save: RefreshSave
    ) -> int | None:
        query, params = save_refreshed(key, row, save, self._clock())
        found = await self._fetchone(query, params, retry=False)
        return None if found is None else int(found[0])

    async def put_pending(self, record_id: str, sealed: str, expires_at: datetime) -> None:
        params = (self._clock() - PENDING_GRACE, record_id, sealed, expires_at)
        await self._rowcount(PUT_PENDING, params, retry=False)

    async def take_pending(self, record_id: str) -> tuple[str, datetime] | None:
        found = await self._fetchone(TAKE_PENDING, (record_id,), retry=False)
        return None if found is None else (found[0], found[1].astimezone(UTC))

    async def close(self) -> None:
        if not self._reserved_busy:  # else its call gives it back to the closed pool
            await self._give_back_reserved()
        for closing in list(self._closing):
            await closing
        await self._pool.close()
