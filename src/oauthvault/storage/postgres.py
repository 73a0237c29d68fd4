"""PostgreSQL through psycopg 3 and psycopg_pool: autocommit, prepared statements.

Every single-row call is one statement in autocommit mode, so it costs one round trip.
The sync store is here, its asyncio twin in :mod:`oauthvault.storage.postgres_async`; they
share their SQL and row conversions (:mod:`oauthvault.storage.postgres_sql`) and differ
only by ``await``. Timestamps come from the vault's clock.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from psycopg_pool import ConnectionPool, PoolTimeout

from oauthvault.crypto.sealing import SealedRow
from oauthvault.errors import StorageUnavailable
from oauthvault.models import StoredConnection, TokenKey
from oauthvault.storage.base import Resealer, RotationBatch
from oauthvault.storage.location import DatabaseLocation
from oauthvault.storage.migrations import HEAD_REVISION
from oauthvault.storage.postgres_sql import (
    CLEAR_INVALIDATIONS,
    COUNT_BY_KEY,
    DELETE_ROW,
    EXPIRING,
    IDLE,
    LIST_ROWS,
    LOCK_ROW,
    LOCK_TIMEOUT,
    NIL_UUID,
    PENDING_INVALIDATIONS,
    PUT_PENDING,
    RECORD_INVALIDATIONS,
    SCHEMA_REVISION,
    SELECT_FOR_ROTATION,
    SELECT_ROW,
    TAKE_PENDING,
    UPDATE_SEALED,
    UPSERT_ROW,
    check_revision,
    key_params,
    locked_update,
    sealed_row,
    stored_connection,
    upsert_params,
)

__all__ = [
    "CONNECTION_OPTIONS",
    "PENDING_GRACE",
    "Clock",
    "PostgresBase",
    "PostgresTokenStore",
    "utc_now",
]


Clock = Callable[[], datetime]
# Expired one-time records are purged this long after they expire.
PENDING_GRACE = timedelta(hours=1)


def utc_now() -> datetime:
    return datetime.now(UTC)


class PostgresBase:
    def __init__(self, location: DatabaseLocation, clock: Clock) -> None:
        if location.kind != "postgres":
            raise ValueError("not a PostgreSQL location")
        self._location = location
        self._clock = clock

    @property
    def description(self) -> str:
        return self._location.description

    def _unavailable(self, error: Exception) -> StorageUnavailable:
        # psycopg messages name hosts and SQL states, never parameters or passwords.
        detail = str(error).strip().splitlines()[0] if str(error).strip() else ""
        return StorageUnavailable(
            f"PostgreSQL at {self.description}: {type(error).__name__}"
            + (f": {detail}" if detail else "")
        )

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.description!r})"


CONNECTION_OPTIONS = {"autocommit": True, "prepare_threshold": 0}


class PostgresLockedRow:
    """A row locked by ``SELECT … FOR UPDATE`` in a transaction on a pooled connection."""

    def __init__(self, store: PostgresTokenStore, key: TokenKey) -> None:
        self._store = store
        self._key = key
        self._pool = store._pool
        try:
            self._connection = self._pool.getconn()
        except PoolTimeout as error:
            raise store._unavailable(error) from None
        try:
            self._connection.execute("BEGIN")
            self._connection.execute(LOCK_TIMEOUT)
            found = self._connection.execute(LOCK_ROW, key_params(key)).fetchone()
        except psycopg.Error as error:
            self._release(commit=False)
            raise store._unavailable(error) from None
        self.row = None if found is None else sealed_row(found[:7])
        self.status: str | None = None if found is None else found[7]

    def update(
        self,
        row: SealedRow | None,
        *,
        status: str,
        last_error: str | None,
        refreshed_at: datetime | None,
    ) -> None:
        query, params = locked_update(
            self._key, row, status, last_error, refreshed_at, self._store._clock()
        )
        try:
            self._connection.execute(query, params)
        except psycopg.Error as error:
            self._release(commit=False)
            raise self._store._unavailable(error) from None

    def _release(self, *, commit: bool) -> None:
        connection, self._connection = self._connection, None  # type: ignore[assignment]
        if connection is None:
            return
        try:
            connection.execute("COMMIT" if commit else "ROLLBACK")
        finally:
            self._pool.putconn(connection)

    def commit(self) -> None:
        try:
            self._release(commit=True)
        except psycopg.Error as error:
            raise self._store._unavailable(error) from None

    def rollback(self) -> None:
        try:
            self._release(commit=False)
        except psycopg.Error:
            pass  # the connection is discarded by the pool; nothing was committed


class PostgresTokenStore(PostgresBase):
    """Sealed token rows in PostgreSQL.

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
        connect_timeout: float = 10.0,
        clock: Clock = utc_now,
    ) -> None:
        super().__init__(location, clock)
        self._pool = ConnectionPool(
            location.conninfo,
            min_size=min_size,
            max_size=max_size,
            timeout=connect_timeout,
            kwargs=CONNECTION_OPTIONS,
            open=False,
            name="oauthvault",
        )
        try:
            self._pool.open(wait=True, timeout=connect_timeout)
            with self._pool.connection() as connection:
                found = connection.execute(SCHEMA_REVISION).fetchone()
                revision = found[0] if found else None
        except psycopg.errors.UndefinedTable:
            revision = None
        except (psycopg.Error, PoolTimeout) as error:
            self._pool.close()
            raise self._unavailable(error) from None
        if revision != HEAD_REVISION:
            self._pool.close()
            check_revision(revision, self.description)

    def _fetchone(self, query: str, params: Sequence[Any]) -> Any:
        try:
            with self._pool.connection() as connection:
                return connection.execute(query, params, prepare=True).fetchone()
        except (psycopg.Error, PoolTimeout) as error:
            raise self._unavailable(error) from None

    def _fetchall(self, query: str, params: Sequence[Any] | dict[str, Any]) -> list[Any]:
        try:
            with self._pool.connection() as connection:
                return connection.execute(query, params, prepare=True).fetchall()
        except (psycopg.Error, PoolTimeout) as error:
            raise self._unavailable(error) from None

    def _rowcount(self, query: str, params: Sequence[Any]) -> int:
        try:
            with self._pool.connection() as connection:
                return connection.execute(query, params, prepare=True).rowcount
        except (psycopg.Error, PoolTimeout) as error:
            raise self._unavailable(error) from None

    def get(self, key: TokenKey) -> SealedRow | None:
        found = self._fetchone(SELECT_ROW, key_params(key))
        return None if found is None else sealed_row(found)

    def upsert(self, key: TokenKey, row: SealedRow) -> None:
        self._rowcount(UPSERT_ROW, upsert_params(key, row, self._clock()))

    def delete(self, key: TokenKey) -> bool:
        return self._rowcount(DELETE_ROW, key_params(key)) > 0

    def list_connections(
        self, provider: str | None, workspace_id: str | None, limit: int
    ) -> list[StoredConnection]:
        params = {"provider": provider, "workspace_id": workspace_id, "limit": limit}
        return [stored_connection(row) for row in self._fetchall(LIST_ROWS, params)]

    def count_by_key_id(self) -> dict[str, int]:
        return {key_id: count for key_id, count in self._fetchall(COUNT_BY_KEY, ())}

    def reseal_batch(
        self, primary_key_id: str, after_row_id: str | None, limit: int, reseal: Resealer
    ) -> RotationBatch:
        rotated: list[TokenKey] = []
        failed: list[TokenKey] = []
        last_row_id = None
        after = uuid.UUID(after_row_id) if after_row_id else NIL_UUID
        try:
            with self._pool.connection() as connection, connection.transaction():
                rows = connection.execute(
                    SELECT_FOR_ROTATION, (primary_key_id, after, limit)
                ).fetchall()
                for row_id, provider, workspace_id, actor_id, *sealed in rows:
                    last_row_id = str(row_id)
                    key = TokenKey(provider, workspace_id, actor_id)
                    new = reseal(key, sealed_row(sealed))
                    if new is None:
                        failed.append(key)
                        continue
                    connection.execute(
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
        except (psycopg.Error, PoolTimeout) as error:
            raise self._unavailable(error) from None
        return RotationBatch(rotated, failed, last_row_id)

    def record_invalidations(self, cache_keys: Sequence[str]) -> None:
        self._rowcount(RECORD_INVALIDATIONS, (list(cache_keys), self._clock()))

    def pending_invalidations(self, limit: int) -> list[str]:
        return [row[0] for row in self._fetchall(PENDING_INVALIDATIONS, (limit,))]

    def clear_invalidations(self, cache_keys: list[str]) -> None:
        self._rowcount(CLEAR_INVALIDATIONS, (cache_keys,))

    def lock_row(self, key: TokenKey) -> PostgresLockedRow:
        return PostgresLockedRow(self, key)

    def expiring_connections(self, before: datetime, limit: int) -> list[TokenKey]:
        return [TokenKey(*row) for row in self._fetchall(EXPIRING, (before, limit))]

    def idle_connections(self, provider: str, before: datetime, limit: int) -> list[TokenKey]:
        return [TokenKey(*row) for row in self._fetchall(IDLE, (provider, before, limit))]

    def put_pending(self, record_id: str, sealed: str, expires_at: datetime) -> None:
        self._rowcount(PUT_PENDING, (self._clock() - PENDING_GRACE, record_id, sealed, expires_at))

    def take_pending(self, record_id: str) -> tuple[str, datetime] | None:
        found = self._fetchone(TAKE_PENDING, (record_id,))
        return None if found is None else (found[0], found[1].astimezone(UTC))

    def close(self) -> None:
        self._pool.close()
