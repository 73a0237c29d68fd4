"""The embedded default: an SQLite file in WAL mode, one connection per thread.

Runs its own migrations when opened, so the quick start needs no server and no setup.
"""

from __future__ import annotations

import asyncio
import functools
import sqlite3
import threading
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from oauthvault.errors import StorageUnavailable
from oauthvault.models import TokenKey
from oauthvault.records import SealedRow
from oauthvault.storage.base import ConnectionInfo, Resealer, RotationBatch
from oauthvault.storage.location import DatabaseLocation
from oauthvault.storage.migrations import HEAD_REVISION

__all__ = ["AsyncSqliteTokenStore", "SqliteTokenStore"]

_SELECT = """
SELECT access_token_encrypted, refresh_token_encrypted, key_id, expires_at, scope
FROM oauth_tokens WHERE provider = ? AND workspace_id = ? AND actor_id = ?
"""
_SELECT_WITH_STATUS = """
SELECT access_token_encrypted, refresh_token_encrypted, key_id, expires_at, scope, status
FROM oauth_tokens WHERE provider = ? AND workspace_id = ? AND actor_id = ?
"""
_UPSERT = """
INSERT INTO oauth_tokens (id, provider, workspace_id, actor_id, access_token_encrypted,
    refresh_token_encrypted, key_id, expires_at, scope, created_at, updated_at)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (provider, workspace_id, actor_id) DO UPDATE SET
    access_token_encrypted = excluded.access_token_encrypted,
    refresh_token_encrypted = excluded.refresh_token_encrypted,
    key_id = excluded.key_id,
    expires_at = excluded.expires_at,
    scope = excluded.scope,
    status = 'active',
    last_error = NULL,
    updated_at = excluded.updated_at
"""
_DELETE = "DELETE FROM oauth_tokens WHERE provider = ? AND workspace_id = ? AND actor_id = ?"
_LIST = """
SELECT provider, workspace_id, actor_id, expires_at, scope,
    refresh_token_encrypted IS NOT NULL, key_id, updated_at, status, last_refreshed_at,
    last_error
FROM oauth_tokens
WHERE (? IS NULL OR provider = ?) AND (? IS NULL OR workspace_id = ?)
ORDER BY provider, workspace_id, actor_id
LIMIT ?
"""


def _to_text(moment: datetime | None) -> str | None:
    # Fixed-width UTC ISO text sorts and compares like the instant it names.
    return None if moment is None else moment.astimezone(UTC).isoformat(timespec="microseconds")


def _from_text(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text)


class SqliteLockedRow:
    """A row locked with ``BEGIN IMMEDIATE`` on a connection of its own (which any thread
    may use), so refreshers in other threads and processes wait for its commit."""

    def __init__(self, store: SqliteTokenStore, key: TokenKey, lock_timeout: float) -> None:
        self._key = key
        try:
            self._connection: sqlite3.Connection | None = sqlite3.connect(
                store.path, timeout=lock_timeout, isolation_level=None, check_same_thread=False
            )
            self._connection.execute("BEGIN IMMEDIATE")
            found = self._connection.execute(
                _SELECT_WITH_STATUS,
                (key.provider, key.workspace_id, key.actor_id),
            ).fetchone()
        except sqlite3.Error as error:
            self.rollback()
            raise _unavailable(error) from None
        self.row = None
        self.status: str | None = None
        if found is not None:
            access, refresh, key_id, expires_at, scope, status = found
            self.row = SealedRow(access, refresh, key_id, _from_text(expires_at), scope)
            self.status = status

    def update(
        self,
        row: SealedRow | None,
        *,
        status: str,
        last_error: str | None,
        refreshed_at: datetime | None,
    ) -> None:
        ids = (self._key.provider, self._key.workspace_id, self._key.actor_id)
        now = _to_text(datetime.now(UTC))
        try:
            assert self._connection is not None  # noqa: S101 - only used while locked
            if row is None:
                self._connection.execute(
                    "UPDATE oauth_tokens SET status = ?, last_error = ?, updated_at = ?"
                    " WHERE provider = ? AND workspace_id = ? AND actor_id = ?",
                    (status, last_error, now, *ids),
                )
            else:
                self._connection.execute(
                    "UPDATE oauth_tokens SET access_token_encrypted = ?,"
                    " refresh_token_encrypted = ?, key_id = ?, expires_at = ?, scope = ?,"
                    " status = ?, last_error = ?, last_refreshed_at = ?, updated_at = ?"
                    " WHERE provider = ? AND workspace_id = ? AND actor_id = ?",
                    (
                        row.access_token_encrypted,
                        row.refresh_token_encrypted,
                        row.key_id,
                        _to_text(row.expires_at),
                        row.scope,
                        status,
                        last_error,
                        _to_text(refreshed_at),
                        now,
                        *ids,
                    ),
                )
        except sqlite3.Error as error:
            self.rollback()
            raise _unavailable(error) from None

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

    def __init__(self, location: DatabaseLocation, *, busy_timeout: float = 5.0) -> None:
        if location.sqlite_path is None:
            raise ValueError("not an SQLite location")
        self._location = location
        self._path: Path = location.sqlite_path
        self._busy_timeout = busy_timeout
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._connections_lock = threading.Lock()
        self._ensure_schema()

    @property
    def description(self) -> str:
        return self._location.description

    @property
    def path(self) -> Path:
        return self._path

    def _connection(self) -> sqlite3.Connection:
        connection: sqlite3.Connection | None = getattr(self._local, "connection", None)
        if connection is None:
            try:
                self._path.parent.mkdir(parents=True, exist_ok=True)
                connection = sqlite3.connect(
                    self._path,
                    timeout=self._busy_timeout,
                    isolation_level=None,  # autocommit; explicit BEGIN where a batch needs one
                    check_same_thread=False,
                )
                connection.execute("PRAGMA journal_mode=WAL")
                connection.execute("PRAGMA synchronous=NORMAL")
            except (sqlite3.Error, OSError) as error:
                raise StorageUnavailable(
                    f"cannot open {self.description}: {type(error).__name__}"
                ) from None
            self._local.connection = connection
            with self._connections_lock:
                self._connections.append(connection)
        return connection

    def _ensure_schema(self) -> None:
        try:
            row = self._connection().execute("SELECT version_num FROM alembic_version").fetchone()
            revision = row[0] if row else None
        except sqlite3.OperationalError:
            revision = None
        if revision != HEAD_REVISION:
            from oauthvault.storage.migrations import upgrade

            upgrade(self._location)

    def get(self, key: TokenKey) -> SealedRow | None:
        try:
            found = (
                self._connection()
                .execute(_SELECT, (key.provider, key.workspace_id, key.actor_id))
                .fetchone()
            )
        except sqlite3.Error as error:
            raise _unavailable(error) from None
        if found is None:
            return None
        access, refresh, key_id, expires_at, scope = found
        return SealedRow(access, refresh, key_id, _from_text(expires_at), scope)

    def upsert(self, key: TokenKey, row: SealedRow) -> None:
        now = _to_text(datetime.now(UTC))
        params = (
            uuid.uuid4().hex,
            key.provider,
            key.workspace_id,
            key.actor_id,
            row.access_token_encrypted,
            row.refresh_token_encrypted,
            row.key_id,
            _to_text(row.expires_at),
            row.scope,
            now,
            now,
        )
        try:
            self._connection().execute(_UPSERT, params)
        except sqlite3.Error as error:
            raise _unavailable(error) from None

    def delete(self, key: TokenKey) -> bool:
        try:
            cursor = self._connection().execute(
                _DELETE, (key.provider, key.workspace_id, key.actor_id)
            )
        except sqlite3.Error as error:
            raise _unavailable(error) from None
        return cursor.rowcount > 0

    def list_connections(
        self, provider: str | None, workspace_id: str | None, limit: int
    ) -> list[ConnectionInfo]:
        params = (provider, provider, workspace_id, workspace_id, limit)
        try:
            rows = self._connection().execute(_LIST, params).fetchall()
        except sqlite3.Error as error:
            raise _unavailable(error) from None
        return [
            ConnectionInfo(
                provider=p,
                workspace_id=w,
                actor_id=a,
                expires_at=_from_text(expires),
                scope=scope,
                has_refresh_token=bool(has_refresh),
                key_id=key_id,
                updated_at=_from_text(updated) or datetime.now(UTC),
                status=status,
                last_refreshed_at=_from_text(refreshed),
                last_error=last_error,
            )
            for (
                p,
                w,
                a,
                expires,
                scope,
                has_refresh,
                key_id,
                updated,
                status,
                refreshed,
                last_error,
            ) in rows
        ]

    def count_by_key_id(self) -> dict[str, int]:
        try:
            rows = (
                self._connection()
                .execute("SELECT key_id, count(*) FROM oauth_tokens GROUP BY key_id")
                .fetchall()
            )
        except sqlite3.Error as error:
            raise _unavailable(error) from None
        return {key_id: count for key_id, count in rows}

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
                    "SELECT id, provider, workspace_id, actor_id, access_token_encrypted,"
                    " refresh_token_encrypted, key_id, expires_at, scope FROM oauth_tokens"
                    " WHERE key_id <> ? AND id > ? ORDER BY id LIMIT ?",
                    (primary_key_id, after_row_id or "", limit),
                ).fetchall()
                for row_id, p, w, a, access, refresh, key_id, expires, scope in rows:
                    last_row_id = row_id
                    key = TokenKey(p, w, a)
                    stored = SealedRow(access, refresh, key_id, _from_text(expires), scope)
                    new = reseal(key, stored)
                    if new is None:
                        failed.append(key)
                        continue
                    connection.execute(
                        "UPDATE oauth_tokens SET access_token_encrypted = ?,"
                        " refresh_token_encrypted = ?, key_id = ? WHERE id = ?",
                        (
                            new.access_token_encrypted,
                            new.refresh_token_encrypted,
                            new.key_id,
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

    def record_invalidation(self, cache_key: str) -> None:
        try:
            self._connection().execute(
                "INSERT INTO oauth_cache_invalidations (cache_key, recorded_at) VALUES (?, ?)"
                " ON CONFLICT (cache_key) DO NOTHING",
                (cache_key, _to_text(datetime.now(UTC))),
            )
        except sqlite3.Error as error:
            raise _unavailable(error) from None

    def pending_invalidations(self, limit: int) -> list[str]:
        try:
            rows = (
                self._connection()
                .execute("SELECT cache_key FROM oauth_cache_invalidations LIMIT ?", (limit,))
                .fetchall()
            )
        except sqlite3.Error as error:
            raise _unavailable(error) from None
        return [row[0] for row in rows]

    def clear_invalidations(self, cache_keys: list[str]) -> None:
        try:
            self._connection().executemany(
                "DELETE FROM oauth_cache_invalidations WHERE cache_key = ?",
                [(key,) for key in cache_keys],
            )
        except sqlite3.Error as error:
            raise _unavailable(error) from None

    def lock_row(self, key: TokenKey, lock_timeout: float = 30.0) -> SqliteLockedRow:
        return SqliteLockedRow(self, key, lock_timeout)

    def _keys(self, query: str, params: tuple[object, ...]) -> list[TokenKey]:
        try:
            rows = self._connection().execute(query, params).fetchall()
        except sqlite3.Error as error:
            raise _unavailable(error) from None
        return [TokenKey(*row) for row in rows]

    def expiring_connections(self, before: datetime, limit: int) -> list[TokenKey]:
        return self._keys(
            "SELECT provider, workspace_id, actor_id FROM oauth_tokens"
            " WHERE status IN ('active', 'degraded') AND refresh_token_encrypted IS NOT NULL"
            " AND expires_at < ? ORDER BY expires_at LIMIT ?",
            (_to_text(before), limit),
        )

    def idle_connections(self, provider: str, before: datetime, limit: int) -> list[TokenKey]:
        return self._keys(
            "SELECT provider, workspace_id, actor_id FROM oauth_tokens"
            " WHERE provider = ? AND status IN ('active', 'degraded')"
            " AND refresh_token_encrypted IS NOT NULL"
            " AND coalesce(last_refreshed_at, updated_at) < ?"
            " ORDER BY coalesce(last_refreshed_at, updated_at) LIMIT ?",
            (provider, _to_text(before), limit),
        )

    def put_pending(self, record_id: str, sealed: str, expires_at: datetime) -> None:
        now = datetime.now(UTC)
        try:
            connection = self._connection()
            connection.execute(
                "DELETE FROM oauth_pending WHERE expires_at < ?",
                (_to_text(now - timedelta(hours=1)),),
            )
            connection.execute(
                "INSERT INTO oauth_pending (record_id, sealed, expires_at) VALUES (?, ?, ?)",
                (record_id, sealed, _to_text(expires_at)),
            )
        except sqlite3.Error as error:
            raise _unavailable(error) from None

    def take_pending(self, record_id: str) -> tuple[str, datetime] | None:
        try:
            found = (
                self._connection()
                .execute(
                    "DELETE FROM oauth_pending WHERE record_id = ? RETURNING sealed, expires_at",
                    (record_id,),
                )
                .fetchone()
            )
        except sqlite3.Error as error:
            raise _unavailable(error) from None
        if found is None:
            return None
        return found[0], datetime.fromisoformat(found[1])

    def close(self) -> None:
        with self._connections_lock:
            for connection in self._connections:
                connection.close()
            self._connections.clear()
        self._local = threading.local()

    def __repr__(self) -> str:
        return f"SqliteTokenStore({self.description!r})"


def _unavailable(error: sqlite3.Error) -> StorageUnavailable:
    return StorageUnavailable(f"SQLite error: {type(error).__name__}: {error}")


class AsyncSqliteLockedRow:
    """:class:`SqliteLockedRow` with each call in a worker thread."""

    def __init__(self, locked: SqliteLockedRow) -> None:
        self._locked = locked
        self.row = locked.row
        self.status = locked.status

    async def update(
        self,
        row: SealedRow | None,
        *,
        status: str,
        last_error: str | None,
        refreshed_at: datetime | None,
    ) -> None:
        await asyncio.to_thread(
            functools.partial(
                self._locked.update,
                row,
                status=status,
                last_error=last_error,
                refreshed_at=refreshed_at,
            )
        )

    async def commit(self) -> None:
        await asyncio.to_thread(self._locked.commit)

    async def rollback(self) -> None:
        await asyncio.to_thread(self._locked.rollback)


class AsyncSqliteTokenStore:
    """The asyncio face of :class:`SqliteTokenStore`: each call runs in a worker thread,
    so a busy database file never blocks the event loop."""

    def __init__(self, location: DatabaseLocation) -> None:
        self._location = location
        self._store: SqliteTokenStore | None = None

    @property
    def description(self) -> str:
        return self._location.description

    @property
    def sync_store(self) -> SqliteTokenStore:
        if self._store is None:
            raise RuntimeError("the store is not open")
        return self._store

    async def open(self) -> None:
        if self._store is None:
            self._store = await asyncio.to_thread(SqliteTokenStore, self._location)

    async def get(self, key: TokenKey) -> SealedRow | None:
        return await asyncio.to_thread(self.sync_store.get, key)

    async def upsert(self, key: TokenKey, row: SealedRow) -> None:
        await asyncio.to_thread(self.sync_store.upsert, key, row)

    async def delete(self, key: TokenKey) -> bool:
        return await asyncio.to_thread(self.sync_store.delete, key)

    async def list_connections(
        self, provider: str | None, workspace_id: str | None, limit: int
    ) -> list[ConnectionInfo]:
        return await asyncio.to_thread(
            self.sync_store.list_connections, provider, workspace_id, limit
        )

    async def record_invalidation(self, cache_key: str) -> None:
        await asyncio.to_thread(self.sync_store.record_invalidation, cache_key)

    async def pending_invalidations(self, limit: int) -> list[str]:
        return await asyncio.to_thread(self.sync_store.pending_invalidations, limit)

    async def clear_invalidations(self, cache_keys: list[str]) -> None:
        await asyncio.to_thread(self.sync_store.clear_invalidations, cache_keys)

    async def lock_row(self, key: TokenKey) -> AsyncSqliteLockedRow:
        locked = await asyncio.to_thread(self.sync_store.lock_row, key)
        return AsyncSqliteLockedRow(locked)

    async def put_pending(self, record_id: str, sealed: str, expires_at: datetime) -> None:
        await asyncio.to_thread(self.sync_store.put_pending, record_id, sealed, expires_at)

    async def take_pending(self, record_id: str) -> tuple[str, datetime] | None:
        return await asyncio.to_thread(self.sync_store.take_pending, record_id)

    async def close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None

    def __repr__(self) -> str:
        return f"AsyncSqliteTokenStore({self.description!r})"
