"""PostgreSQL for the asyncio vault: the twin of :mod:`oauthvault.storage.postgres`.

The same SQL and row conversions (:mod:`oauthvault.storage.postgres_sql`), awaited.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import psycopg
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from oauthvault.crypto.sealing import SealedRow
from oauthvault.models import StoredConnection, TokenKey
from oauthvault.storage.location import DatabaseLocation
from oauthvault.storage.migrations import HEAD_REVISION
from oauthvault.storage.postgres import (
    CONNECTION_OPTIONS,
    PENDING_GRACE,
    Clock,
    PostgresBase,
    utc_now,
)
from oauthvault.storage.postgres_sql import (
    CLEAR_INVALIDATIONS,
    COUNT_BY_KEY,
    DELETE_ROW,
    EXPIRING,
    IDLE,
    LIST_ROWS,
    LOCK_ROW,
    LOCK_TIMEOUT,
    PENDING_INVALIDATIONS,
    PUT_PENDING,
    RECORD_INVALIDATIONS,
    SCHEMA_REVISION,
    SELECT_ROW,
    TAKE_PENDING,
    UPSERT_ROW,
    check_revision,
    key_params,
    locked_update,
    sealed_row,
    stored_connection,
    upsert_params,
)

__all__ = ["AsyncPostgresTokenStore"]


class AsyncPostgresLockedRow:
    """The asyncio twin of :class:`PostgresLockedRow`; built by ``await store.lock_row``."""

    def __init__(self, store: AsyncPostgresTokenStore, key: TokenKey) -> None:
        self._store = store
        self._key = key
        self._connection: psycopg.AsyncConnection[Any] | None = None
        self.row: SealedRow | None = None
        self.status: str | None = None

    async def acquire(self) -> None:
        pool = self._store._pool
        try:
            self._connection = await pool.getconn()
        except PoolTimeout as error:
            raise self._store._unavailable(error) from None
        try:
            await self._connection.execute("BEGIN")
            await self._connection.execute(LOCK_TIMEOUT)
            cursor = await self._connection.execute(LOCK_ROW, key_params(self._key))
            found = await cursor.fetchone()
        except psycopg.Error as error:
            await self._release(commit=False)
            raise self._store._unavailable(error) from None
        self.row = None if found is None else sealed_row(found[:7])
        self.status = None if found is None else found[7]

    async def update(
        self,
        row: SealedRow | None,
        *,
        status: str,
        last_error: str | None,
        refreshed_at: datetime | None,
    ) -> None:
        assert self._connection is not None  # noqa: S101 - acquire() ran
        query, params = locked_update(
            self._key, row, status, last_error, refreshed_at, self._store._clock()
        )
        try:
            await self._connection.execute(query, params)
        except psycopg.Error as error:
            await self._release(commit=False)
            raise self._store._unavailable(error) from None

    async def _release(self, *, commit: bool) -> None:
        connection, self._connection = self._connection, None
        if connection is None:
            return
        try:
            await connection.execute("COMMIT" if commit else "ROLLBACK")
        finally:
            await self._store._pool.putconn(connection)

    async def commit(self) -> None:
        try:
            await self._release(commit=True)
        except psycopg.Error as error:
            raise self._store._unavailable(error) from None

    async def rollback(self) -> None:
        try:
            await self._release(commit=False)
        except psycopg.Error:
            pass


class AsyncPostgresTokenStore(PostgresBase):
    """The asyncio twin of :class:`PostgresTokenStore`; call :meth:`open` first."""

    def __init__(
        self,
        location: DatabaseLocation,
        *,
        min_size: int = 1,
        max_size: int = 10,
        connect_timeout: float = 10.0,
        clock: Clock = utc_now,
    ) -> None:
        super().__init__(location, clock)
        self._connect_timeout = connect_timeout
        self._pool = AsyncConnectionPool(
            location.conninfo,
            min_size=min_size,
            max_size=max_size,
            timeout=connect_timeout,
            kwargs=CONNECTION_OPTIONS,
            open=False,
            name="oauthvault-async",
        )

    async def open(self) -> None:
        try:
            await self._pool.open(wait=True, timeout=self._connect_timeout)
            async with self._pool.connection() as connection:
                found = await (await connection.execute(SCHEMA_REVISION)).fetchone()
                revision = found[0] if found else None
        except psycopg.errors.UndefinedTable:
            revision = None
        except (psycopg.Error, PoolTimeout) as error:
            await self._pool.close()
            raise self._unavailable(error) from None
        if revision != HEAD_REVISION:
            await self._pool.close()
            check_revision(revision, self.description)

    async def _fetchone(self, query: str, params: Sequence[Any]) -> Any:
        try:
            async with self._pool.connection() as connection:
                cursor = await connection.execute(query, params, prepare=True)
                return await cursor.fetchone()
        except (psycopg.Error, PoolTimeout) as error:
            raise self._unavailable(error) from None

    async def _fetchall(self, query: str, params: Sequence[Any] | dict[str, Any]) -> list[Any]:
        try:
            async with self._pool.connection() as connection:
                cursor = await connection.execute(query, params, prepare=True)
                return await cursor.fetchall()
        except (psycopg.Error, PoolTimeout) as error:
            raise self._unavailable(error) from None

    async def _rowcount(self, query: str, params: Sequence[Any]) -> int:
        try:
            async with self._pool.connection() as connection:
                return (await connection.execute(query, params, prepare=True)).rowcount
        except (psycopg.Error, PoolTimeout) as error:
            raise self._unavailable(error) from None

    async def get(self, key: TokenKey) -> SealedRow | None:
        found = await self._fetchone(SELECT_ROW, key_params(key))
        return None if found is None else sealed_row(found)

    async def upsert(self, key: TokenKey, row: SealedRow) -> None:
        await self._rowcount(UPSERT_ROW, upsert_params(key, row, self._clock()))

    async def delete(self, key: TokenKey) -> bool:
        return await self._rowcount(DELETE_ROW, key_params(key)) > 0

    async def list_connections(
        self, provider: str | None, workspace_id: str | None, limit: int
    ) -> list[StoredConnection]:
        params = {"provider": provider, "workspace_id": workspace_id, "limit": limit}
        return [stored_connection(row) for row in await self._fetchall(LIST_ROWS, params)]

    async def record_invalidations(self, cache_keys: Sequence[str]) -> None:
        await self._rowcount(RECORD_INVALIDATIONS, (list(cache_keys), self._clock()))

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

    async def put_pending(self, record_id: str, sealed: str, expires_at: datetime) -> None:
        await self._rowcount(
            PUT_PENDING, (self._clock() - PENDING_GRACE, record_id, sealed, expires_at)
        )

    async def take_pending(self, record_id: str) -> tuple[str, datetime] | None:
        found = await self._fetchone(TAKE_PENDING, (record_id,))
        return None if found is None else (found[0], found[1].astimezone(UTC))

    async def close(self) -> None:
        await self._pool.close()
