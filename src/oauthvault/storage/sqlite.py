"""The embedded default: an SQLite file in WAL mode, one connection per thread.

Runs its own migrations when opened, so the quick start needs no server and no setup.
Every connection it opens is closed by :meth:`SqliteTokenStore.close` (the per-thread
ones) or when its lock ends (a refresh lock's own connection), on error paths too. The
asyncio vault uses it through :mod:`oauthvault.storage.sqlite_async` (worker threads).
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from oauthvault.crypto.sealing import SealedRow
from oauthvault.errors import StorageUnavailable
from oauthvault.models import ConnectionQuery, StoredConnection, TokenKey
from oauthvault.storage import sqlite_sql as sql
from oauthvault.storage.base import RefreshLease, RefreshSave, Resealer, RotationBatch
from oauthvault.storage.location import DatabaseLocation
from oauthvault.storage.migrations import HEAD_REVISION

__all__ = ["Clock", "SqliteLockedRow", "SqliteTokenStore", "utc_now"]

Clock = Callable[[], datetime]
# Expired one-time records are purged this long after they expire.
_PENDING_GRACE = timedelta(hours=1)


def utc_now() -> datetime:
    return datetime.now(UTC)


def _unavailable(error: sqlite3.Error | OSError) -> StorageUnavailable:
    return StorageUnavailable(f"SQLite error: {type(error).__name__}: {error}")


class SqliteLockedRow:
    """A row locked with ``BEGIN IMMEDIATE`` on a connection of its own (which any thread
    may use), so refreshers in other threads and processes wait for its commit."""

    def __init__(self, path: Path, key: TokenKey, lock_timeout: float, clock: Clock) -> None:
        self._key = key
        self._clock = clock
        self._connection: sqlite3.Connection | None = None
        try:
            self._connection = sqlite3.connect(
                path, timeout=lock_timeout, isolation_level=None, check_same_thread=False
            )
            self._connection.execute("BEGIN IMMEDIATE")
            found = self._connection.execute(sql.LOCK_ROW, sql.key_params(key)).fetchone()
        except sqlite3.Error as error:
            self.rollback()
            raise _unavailable(error) from None
        except BaseException:
            self.rollback()
            raise
        self.row: SealedRow | None = None
        self.status: str | None = None
        self.lease: RefreshLease | None = None
        self.last_error: str | None = None
        if found is not None:
            self.row, self.status, self.lease, self.last_error = sql.locked_state(found)

    def _execute(self, query: str, params: Sequence[Any]) -> Any:
        try:
            assert self._connection is not None  # noqa: S101 - only used while locked
            return self._connection.execute(query, params).fetchone()
        except sqlite3.Error as error:
            self.rollback()
            raise _unavailable(error) from None
        except BaseException:
            self.rollback()
            raise

    def update(self, *, status: str, last_error: str | None) -> None:
        now = sql.to_text(self._clock())
        self._execute(
            sql.UPDATE_LOCKED_STATUS, (status, last_error, now, *sql.key_params(self._key))
        )

    def take_lease(self, lease: RefreshLease) -> int:
        until = sql.to_text(lease.until)
        found = self._execute(sql.TAKE_LEASE, (lease.owner, until, *sql.key_params(self._key)))
        return int(found[0])

    def _finish(self, statement: str) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            try:
                connection.execute(statement)
            finally:
                connection.close()

    def commit(self) -> None:
        try:
            self._finish("COMMIT")
        except sqlite3.Error as error:
            raise _unavailable(error) from None

    def rollback(self) -> None:
        try:
            self._finish("ROLLBACK")
        except sqlite3.Error:
            pass  # nothing was committed; the connection is closed either way


class SqliteTokenStore:
    """Sealed token rows in an SQLite file.

    Raises:
        StorageUnavailable: the file cannot be opened or written.
    """

    def __init__(
        self,
        location: DatabaseLocation,
        *,
        busy_timeout: float = 5.0,
        clock: Clock = utc_now,
    ) -> None:
        if location.sqlite_path is None:
            raise ValueError("not an SQLite location")
        self._location = location
        self._path: Path = location.sqlite_path
        self._busy_timeout = busy_timeout
        self._clock = clock
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._connections_lock = threading.Lock()
        try:
            self._ensure_schema()
        except BaseException:
            self.close()
            raise

    @property
    def description(self) -> str:
        return self._location.description

    def open(self) -> None:
        """Nothing to do: the file is opened (and its schema made) when the store is."""

    def _connection(self) -> sqlite3.Connection:
        connection: sqlite3.Connection | None = getattr(self._local, "connection", None)
        if connection is not None:
            return connection
        try:
            self._path.parent.mkdir(parents=True, exist_ok=True)
            connection = sqlite3.connect(
                self._path,
                timeout=self._busy_timeout,
                isolation_level=None,  # autocommit; explicit BEGIN where a batch needs one
                check_same_thread=False,
            )
        except (sqlite3.Error, OSError) as error:
            raise StorageUnavailable(
                f"cannot open {self.description}: {type(error).__name__}"
            ) from None
        try:
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute("PRAGMA synchronous=NORMAL")
        except sqlite3.Error as error:
            connection.close()
            raise _unavailable(error) from None
        self._local.connection = connection
        with self._connections_lock:
            self._connections.append(connection)
        return connection

    def _ensure_schema(self) -> None:
        try:
            found = self._connection().execute(sql.SCHEMA_REVISION).fetchone()
            revision = found[0] if found else None
        except sqlite3.OperationalError:
            revision = None
        if revision != HEAD_REVISION:
            from oauthvault.storage.migrations import upgrade

            upgrade(self._location)

    def _execute(self, query: str, params: Sequence[Any] = ()) -> sqlite3.Cursor:
        try:
            return self._connection().execute(query, params)
        except sqlite3.Error as error:
            raise _unavailable(error) from None

    def _fetchall(self, query: str, params: Sequence[Any] | Mapping[str, Any] = ()) -> list[Any]:
        try:
            return self._connection().execute(query, params).fetchall()
        except sqlite3.Error as error:
            raise _unavailable(error) from None

    def get(self, key: TokenKey) -> SealedRow | None:
        try:
            found = self._connection().execute(sql.SELECT_ROW, sql.key_params(key)).fetchone()
        except sqlite3.Error as error:
            raise _unavailable(error) from None
        return None if found is None else sql.sealed_row(found)

    def upsert(self, key: TokenKey, row: SealedRow) -> int:
        found = self._fetchall(sql.UPSERT_ROW, sql.upsert_params(key, row, self._clock()))
        return int(found[0][0])

    def delete(self, key: TokenKey) -> int | None:
        found = self._fetchall(sql.DELETE_ROW, sql.key_params(key))
        return int(found[0][0]) if found else None

    def list_connections(self, query: ConnectionQuery) -> list[StoredConnection]:
        rows = self._fetchall(sql.LIST_ROWS, query.params())
        return [sql.stored_connection(found) for found in rows]

    def count_by_status(self) -> dict[tuple[str, str], int]:
        return {(p, s): n for p, s, n in self._fetchall(sql.COUNT_BY_STATUS)}

    def schema_revision(self) -> str | None:
        found = self._fetchall(sql.SCHEMA_REVISION)
        return str(found[0][0]) if found else None

    def count_by_key_id(self) -> dict[str, int]:
        return {key_id: count for key_id, count in self._fetchall(sql.COUNT_BY_KEY)}

    def reseal_batch(
        self, primary_key_id: str, after_row_id: str | None, limit: int, reseal: Resealer
    ) -> RotationBatch:
        connection = self._connection()
        rotated: list[TokenKey] = []
        failed: list[TokenKey] = []
        last_row_id = None
        try:
            # IMMEDIATE takes the write lock first: no store can slip in between read and write.
            connection.execute("BEGIN IMMEDIATE")
            try:
                rows = connection.execute(
                    sql.SELECT_FOR_ROTATION, (primary_key_id, after_row_id or "", limit)
                ).fetchall()
                for row_id, provider, workspace_id, actor_id, *sealed in rows:
                    last_row_id = row_id
                    key = TokenKey(provider, workspace_id, actor_id)
                    new = reseal(key, sql.sealed_row(sealed))
                    if new is None:
                        failed.append(key)
                        continue
                    connection.execute(
                        sql.UPDATE_SEALED,
                        (
                            new.access_token_encrypted,
                            new.refresh_token_encrypted,
                            new.key_id,
                            new.response_encrypted,
                            row_id,
                        ),
                    )
                    rotated.append(key)
            except BaseException:
                connection.execute("ROLLBACK")
                raise
            connection.execute("COMMIT")
        except sqlite3.Error as error:
            raise _unavailable(error) from None
        return RotationBatch(rotated, failed, last_row_id)

    def record_invalidations(self, cache_keys: Sequence[str]) -> None:
        stamp = sql.to_text(self._clock())
        try:
            self._connection().executemany(
                sql.RECORD_INVALIDATION, [(name, stamp) for name in cache_keys]
            )
        except sqlite3.Error as error:
            raise _unavailable(error) from None

    def pending_invalidations(self, limit: int) -> list[str]:
        return [found[0] for found in self._fetchall(sql.PENDING_INVALIDATIONS, (limit,))]

    def clear_invalidations(self, cache_keys: list[str]) -> None:
        try:
            self._connection().executemany(sql.CLEAR_INVALIDATION, [(name,) for name in cache_keys])
        except sqlite3.Error as error:
            raise _unavailable(error) from None

    def data_version(self) -> int:
        """``PRAGMA data_version`` of this thread's connection: it changes when any other
        connection (thread or process) has committed since this one last asked."""
        try:
            found = self._connection().execute("PRAGMA data_version").fetchone()
        except sqlite3.Error as error:
            raise _unavailable(error) from None
        return int(found[0])

    def lock_row(self, key: TokenKey, lock_timeout: float = 10.0) -> SqliteLockedRow:
        return SqliteLockedRow(self._path, key, lock_timeout, self._clock)

    def release_lease(self, key: TokenKey, owner: str) -> None:
        self._execute(sql.RELEASE_LEASE, (*sql.key_params(key), owner))

    def save_refreshed(self, key: TokenKey, row: SealedRow | None, save: RefreshSave) -> int | None:
        query, params = sql.save_refreshed(key, row, save, self._clock())
        found = self._fetchall(query, params)
        return int(found[0][0]) if found else None

    def expiring_connections(self, before: datetime, limit: int) -> list[TokenKey]:
        rows = self._fetchall(sql.EXPIRING, (sql.to_text(before), limit))
        return [TokenKey(*found) for found in rows]

    def idle_connections(self, provider: str, before: datetime, limit: int) -> list[TokenKey]:
        rows = self._fetchall(sql.IDLE, (provider, sql.to_text(before), limit))
        return [TokenKey(*found) for found in rows]

    def put_pending(self, record_id: str, sealed: str, expires_at: datetime) -> None:
        self._execute(sql.PURGE_PENDING, (sql.to_text(self._clock() - _PENDING_GRACE),))
        self._execute(sql.PUT_PENDING, (record_id, sealed, sql.to_text(expires_at)))

    def claim_pending(self, record_id: str, expires_at: datetime) -> bool:
        self._execute(sql.PURGE_PENDING, (sql.to_text(self._clock() - _PENDING_GRACE),))
        claimed = self._execute(sql.CLAIM_PENDING, (record_id, sql.to_text(expires_at)))
        return claimed.rowcount == 1

    def take_pending(self, record_id: str) -> tuple[str, datetime] | None:
        try:
            found = self._connection().execute(sql.TAKE_PENDING, (record_id,)).fetchone()
        except sqlite3.Error as error:
            raise _unavailable(error) from None
        if found is None:
            return None
        return found[0], datetime.fromisoformat(found[1])

    def close(self) -> None:
        """Close every connection this store opened, in whichever thread."""
        with self._connections_lock:
            connections, self._connections = self._connections, []
        for connection in connections:
            connection.close()
        self._local = threading.local()

    def __repr__(self) -> str:
        return f"SqliteTokenStore({self.description!r})"
