"""PostgreSQL through psycopg 3 and psycopg_pool: autocommit, prepared statements.

Every single-row call is one statement in autocommit mode, so it costs one round trip.
Every failure is a ``StorageUnavailable``; after a connection breaks, the
:class:`~oauthvault.storage.outage.OutageGate` makes calls fail fast while the server is
away and move to a new pool as soon as it is back.
The sync store is here, its asyncio twin in :mod:`oauthvault.storage.postgres_async`; they
share their SQL and row conversions (:mod:`oauthvault.storage.postgres_sql`) and differ
only by ``await``. Timestamps come from the vault's clock.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import psycopg
from psycopg_pool import ConnectionPool, PoolClosed, PoolTimeout, TooManyRequests

from oauthvault.crypto.sealing import SealedRow
from oauthvault.errors import StorageUnavailable
from oauthvault.models import ConnectionQuery, StoredConnection, TokenKey
from oauthvault.storage.base import RefreshLease, RefreshSave, Resealer, RotationBatch
from oauthvault.storage.location import DatabaseLocation
from oauthvault.storage.migrations import HEAD_REVISION
from oauthvault.storage.outage import OutageGate
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

__all__ = [
    "CONNECTION_OPTIONS",
    "PENDING_GRACE",
    "POOL_ERRORS",
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


T = TypeVar("T")


def _one(cursor: psycopg.Cursor[Any]) -> Any:
    return cursor.fetchone()


def _all(cursor: psycopg.Cursor[Any]) -> list[Any]:
    return cursor.fetchall()


def _count(cursor: psycopg.Cursor[Any]) -> int:
    return cursor.rowcount


class PostgresBase:
    def __init__(
        self,
        location: DatabaseLocation,
        clock: Clock,
        *,
        connect_timeout: float,
        pool_timeout: float,
        min_size: int,
        max_size: int,
    ) -> None:
        if location.kind != "postgres":
            raise ValueError("not a PostgreSQL location")
        self._location = location
        self._clock = clock
        self._connect_timeout = connect_timeout
        self._pool_timeout = pool_timeout
        self._min_size = min_size
        self._max_size = max_size
        self._gate = OutageGate()
        self._pool: Any = None  # each store's own pool type

    @property
    def description(self) -> str:
        return self._location.description

    @property
    def _options(self) -> dict[str, Any]:
        """Every connection's options: autocommit, no server-side prepare by psycopg's
        heuristics, the connect timeout (unless the URL sets its own)."""
        options: dict[str, Any] = dict(CONNECTION_OPTIONS)
        if "connect_timeout" not in self._location.conninfo:
            options["connect_timeout"] = max(1, round(self._connect_timeout))
        return options

    def _pool_arguments(self, name: str) -> dict[str, Any]:
        """What both stores' pools are made with (each store its own pool class)."""
        return {
            "min_size": self._min_size,
            "max_size": self._max_size,
            "timeout": self._pool_timeout,
            "kwargs": self._options,
            "open": False,
            "name": name,
        }

    def _unavailable(self, error: Exception) -> StorageUnavailable:
        # psycopg messages name hosts and SQL states, never parameters or passwords.
        detail = str(error).strip().splitlines()[0] if str(error).strip() else ""
        return StorageUnavailable(
            f"PostgreSQL at {self.description}: {type(error).__name__}"
            + (f": {detail}" if detail else "")
        )

    def _failed(
        self,
        error: Exception,
        pool: object,
        connection: psycopg.BaseConnection[Any] | None = None,
    ) -> StorageUnavailable:
        """The typed error for ``error`` met on ``pool``. A broken connection of the pool
        in use closes the gate (one of a pool already replaced says nothing new); so does a
        pool that timed out or closed while the server does not take a direct connection
        (an outage, not load)."""
        if pool is self._pool:
            if isinstance(error, POOL_ERRORS):
                if not self._server_answers():
                    self._gate.close()
            elif isinstance(error, psycopg.OperationalError) and (
                connection is None or connection.broken or connection.closed
            ):
                self._gate.close()
        return self._unavailable(error)

    def _server_answers(self) -> bool:
        """Whether a direct connection works now (the sync store checks; the async one
        cannot block its loop here, so it answers False and lets the gate's probe check)."""
        return False

    def _still_down(self) -> StorageUnavailable:
        return StorageUnavailable(
            f"PostgreSQL at {self.description}: unavailable for "
            f"{self._gate.seconds_down():.1f} s (checking again every fraction of a second)"
        )

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.description!r})"


CONNECTION_OPTIONS = {"autocommit": True, "prepare_threshold": 0}
#: Seconds a store keeps its reserved connection (below) before handing it back to the pool
#: and taking one again, so the pool's own upkeep (lifetime, health) reaches it too.
RESERVED_FOR = 60.0
# What a pool raises instead of handing out a connection.
POOL_ERRORS = (PoolTimeout, PoolClosed, TooManyRequests)


class PostgresLockedRow:
    """A row locked by ``SELECT … FOR UPDATE`` in a transaction on a pooled connection."""

    def __init__(self, store: PostgresTokenStore, key: TokenKey) -> None:
        self._store = store
        self._key = key
        self._pool = store._usable_pool()
        try:
            self._connection = self._pool.getconn()
        except psycopg.Error as error:  # PoolTimeout, PoolClosed (a pool just replaced)
            raise store._failed(error, self._pool) from None
        try:
            self._connection.execute("BEGIN")
            self._connection.execute(LOCK_TIMEOUT)
            found = self._connection.execute(LOCK_ROW, key_params(key)).fetchone()
        except psycopg.Error as error:
            failure = store._failed(error, self._pool, self._connection)
            self.rollback()
            raise failure from None
        except BaseException:  # interrupted: never keep the connection (or the lock)
            self.rollback()
            raise
        self.row: SealedRow | None = None
        self.status: str | None = None
        self.lease: RefreshLease | None = None
        if found is not None:
            self.row, self.status, self.lease = locked_state(found)

    def _execute(self, query: str, params: Sequence[Any]) -> Any:
        try:
            cursor = self._connection.execute(query, params)
            return cursor.fetchone() if cursor.description else None
        except psycopg.Error as error:
            failure = self._store._failed(error, self._pool, self._connection)
            self.rollback()
            raise failure from None
        except BaseException:
            self.rollback()
            raise

    def update(self, *, status: str, last_error: str | None) -> None:
        now = self._store._clock()
        self._execute(UPDATE_LOCKED_STATUS, (status, last_error, now, *key_params(self._key)))

    def take_lease(self, lease: RefreshLease) -> int:
        found = self._execute(TAKE_LEASE, (lease.owner, lease.until, *key_params(self._key)))
        return int(found[0])

    def commit(self) -> None:
        connection, self._connection = self._connection, None  # type: ignore[assignment]
        if connection is None:
            return
        try:
            connection.execute("COMMIT")
        except psycopg.Error as error:
            raise self._store._failed(error, self._pool, connection) from None
        finally:
            self._pool.putconn(connection)

    def rollback(self) -> None:
        connection, self._connection = self._connection, None  # type: ignore[assignment]
        if connection is None:
            return
        try:
            connection.execute("ROLLBACK")
        except psycopg.Error:
            pass  # a lost connection has rolled back already; the pool discards it
        finally:
            self._pool.putconn(connection)


class PostgresTokenStore(PostgresBase):
    """Sealed token rows in PostgreSQL.

    ``connect_timeout`` bounds each new connection, ``pool_timeout`` the wait for a pooled
    one. After a connection breaks, calls fail at once (``StorageUnavailable``) while the
    server is away, and the first one after it is back succeeds on a new pool.

    Raises:
        StorageUnavailable: the server cannot be reached in ``connect_timeout`` seconds,
            or its schema is not at this version's revision.
    """

    _pool: ConnectionPool

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
        self._swap_lock = threading.Lock()
        # The reserved connection: one pooled connection kept out of the pool for the
        # autocommit statement of whichever call finds it free (most calls, unless many
        # threads are busy at once), which then costs no check-out. Only used under its lock.
        self._reserved_lock = threading.Lock()
        self._reserved: psycopg.Connection[Any] | None = None
        self._reserved_pool: ConnectionPool | None = None
        self._reserved_until = 0.0
        # One direct connection first: when the server cannot be reached its error names
        # the reason (refused, unknown host, bad password) at once, where a pool would
        # retry in the background and time out saying only that it did.
        try:
            with psycopg.connect(self._location.conninfo, **self._options) as connection:
                found = connection.execute(SCHEMA_REVISION).fetchone()
                revision = found[0] if found else None
        except psycopg.errors.UndefinedTable:
            revision = None
        except psycopg.Error as error:
            raise self._unavailable(error) from None
        if revision != HEAD_REVISION:
            check_revision(revision, self.description)
        self._pool = self._new_pool()
        try:
            self._pool.open(wait=True, timeout=connect_timeout)
        except (psycopg.Error, PoolTimeout) as error:
            self._pool.close()
            raise self._unavailable(error) from None

    def _new_pool(self) -> ConnectionPool:
        return ConnectionPool(self._location.conninfo, **self._pool_arguments("oauthvault"))

    def _usable_pool(self) -> ConnectionPool:
        """The pool, or (after a connection broke) a new one once a probe reaches the
        server; raises ``StorageUnavailable`` at once while it does not."""
        if self._gate.is_open:
            return self._pool
        if not self._gate.claim_probe():
            raise self._still_down()
        with self._swap_lock:
            if self._gate.is_open:
                return self._pool
            try:
                psycopg.connect(self._location.conninfo, **self._options).close()
            except psycopg.Error as error:
                raise self._unavailable(error) from None
            old, self._pool = self._pool, self._new_pool()
            self._pool.open(wait=False)
            self._gate.open()
        # Closed aside: its workers may still be waiting on a connection attempt. The
        # connections still out are closed as they come back.
        threading.Thread(target=old.close, name="oauthvault-old-pool", daemon=True).start()
        return self._pool

    def _server_answers(self) -> bool:
        try:
            psycopg.connect(self._location.conninfo, **self._options).close()
        except psycopg.Error:
            return False
        return True

    @contextmanager
    def _connection(self, pool: ConnectionPool) -> Iterator[psycopg.Connection[Any]]:
        try:
            with pool.connection() as connection:
                try:
                    yield connection
                except psycopg.Error as error:
                    raise self._failed(error, pool, connection) from None
        except psycopg.Error as error:  # from the pool: PoolTimeout, PoolClosed
            raise self._failed(error, pool) from None

    def _run(
        self, query: str, params: Any, read: Callable[[psycopg.Cursor[Any]], T], *, retry: bool
    ) -> T:
        """Execute one autocommit statement and ``read`` its result, on the reserved
        connection when it is free, else on a pooled one; an idempotent one (``retry``) is
        tried once more when its connection turned out broken (a server restart the pool
        had not noticed yet) or its pool was replaced meanwhile, on the new pool."""
        for attempt in (1, 2):
            pool = self._usable_pool()
            try:
                if self._reserved_lock.acquire(blocking=False):
                    try:
                        return self._run_reserved(pool, query, params, read)
                    finally:
                        self._reserved_lock.release()
                return self._run_pooled(pool, query, params, read)
            except StorageUnavailable:
                if attempt == 2 or not retry or (self._gate.is_open and self._pool is pool):
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    def _run_pooled(
        self,
        pool: ConnectionPool,
        query: str,
        params: Any,
        read: Callable[[psycopg.Cursor[Any]], T],
    ) -> T:
        # getconn/putconn rather than pool.connection(): an autocommit statement needs
        # none of its transaction handling.
        try:
            connection = pool.getconn()
        except psycopg.Error as error:  # PoolTimeout, PoolClosed
            raise self._failed(error, pool) from None
        try:
            return read(connection.execute(query, params, prepare=True))
        except psycopg.Error as error:
            raise self._failed(error, pool, connection) from None
        finally:
            pool.putconn(connection)

    def _run_reserved(
        self,
        pool: ConnectionPool,
        query: str,
        params: Any,
        read: Callable[[psycopg.Cursor[Any]], T],
    ) -> T:
        """As :meth:`_run_pooled`, on the reserved connection (the caller holds its lock).
        A connection of an older pool, or held for ``RESERVED_FOR``, goes back first; one
        whose statement failed goes back to its pool, which checks it."""
        connection = self._reserved
        if (
            connection is None
            or self._reserved_pool is not pool
            or (time.monotonic() > self._reserved_until)
        ):
            self._give_back_reserved()
            try:
                connection = pool.getconn()
            except psycopg.Error as error:  # PoolTimeout, PoolClosed
                raise self._failed(error, pool) from None
            self._reserved, self._reserved_pool = connection, pool
            self._reserved_until = time.monotonic() + RESERVED_FOR
        try:
            return read(connection.execute(query, params, prepare=True))
        except psycopg.Error as error:
            failure = self._failed(error, pool, connection)
            self._give_back_reserved()
            raise failure from None
        except BaseException:  # interrupted mid-statement: the pool resets or replaces it
            self._give_back_reserved()
            raise

    def _give_back_reserved(self) -> None:
        connection, pool = self._reserved, self._reserved_pool
        self._reserved = self._reserved_pool = None
        if connection is not None and pool is not None:
            pool.putconn(connection)  # a closed pool closes it

    def _fetchone(self, query: str, params: Sequence[Any], *, retry: bool = True) -> Any:
        return self._run(query, params, _one, retry=retry)

    def _fetchall(self, query: str, params: Sequence[Any] | dict[str, Any]) -> list[Any]:
        return self._run(query, params, _all, retry=True)

    def _rowcount(self, query: str, params: Sequence[Any], *, retry: bool = True) -> int:
        return self._run(query, params, _count, retry=retry)

    def get(self, key: TokenKey) -> SealedRow | None:
        found = self._fetchone(SELECT_ROW, key_params(key))
        return None if found is None else sealed_row(found)

    def upsert(self, key: TokenKey, row: SealedRow) -> int:
        version: int = self._fetchone(UPSERT_ROW, upsert_params(key, row, self._clock()))[0]
        return version

    def delete(self, key: TokenKey) -> int | None:
        # Not retried: a delete that did commit before its connection broke would then
        # report that nothing was stored.
        found = self._fetchone(DELETE_ROW, key_params(key), retry=False)
        return None if found is None else int(found[0])

    def list_connections(self, query: ConnectionQuery) -> list[StoredConnection]:
        return [stored_connection(row) for row in self._fetchall(LIST_ROWS, query.params())]

    def count_by_status(self) -> dict[tuple[str, str], int]:
        return {(p, s): n for p, s, n in self._fetchall(COUNT_BY_STATUS, ())}

    def schema_revision(self) -> str | None:
        found = self._fetchone(SCHEMA_REVISION, ())
        return None if found is None else str(found[0])

    def count_by_key_id(self) -> dict[str, int]:
        return {key_id: count for key_id, count in self._fetchall(COUNT_BY_KEY, ())}

    def reseal_batch(
        self, primary_key_id: str, after_row_id: str | None, limit: int, reseal: Resealer
    ) -> RotationBatch:
        rotated: list[TokenKey] = []
        failed: list[TokenKey] = []
        last_row_id = None
        after = uuid.UUID(after_row_id) if after_row_id else NIL_UUID
        with self._connection(self._usable_pool()) as connection, connection.transaction():
            rows = connection.execute(SELECT_FOR_ROTATION, (primary_key_id, after, limit))
            for row_id, provider, workspace_id, actor_id, *sealed in rows.fetchall():
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
        return RotationBatch(rotated, failed, last_row_id)

    def record_invalidations(self, cache_keys: Sequence[str]) -> None:
        self._rowcount(RECORD_INVALIDATIONS, (list(cache_keys), self._clock()))

    def pending_invalidations(self, limit: int) -> list[str]:
        return [row[0] for row in self._fetchall(PENDING_INVALIDATIONS, (limit,))]

    def clear_invalidations(self, cache_keys: list[str]) -> None:
        self._rowcount(CLEAR_INVALIDATIONS, (cache_keys,))

    def lock_row(self, key: TokenKey) -> PostgresLockedRow:
        return PostgresLockedRow(self, key)

    def notify(self, channel: str, payload: str) -> None:
        """``NOTIFY`` through the pool (the change feed's probe goes the way writes go)."""
        self._fetchone(NOTIFY, (channel, payload), retry=False)

    def release_lease(self, key: TokenKey, owner: str) -> None:
        self._rowcount(RELEASE_LEASE, (*key_params(key), owner))

    def save_refreshed(self, key: TokenKey, row: SealedRow | None, save: RefreshSave) -> int | None:
        query, params = save_refreshed(key, row, save, self._clock())
        # Not retried here: the refresh flow retries it, guarded, for as long as it may.
        found = self._fetchone(query, params, retry=False)
        return None if found is None else int(found[0])

    def expiring_connections(self, before: datetime, limit: int) -> list[TokenKey]:
        return [TokenKey(*row) for row in self._fetchall(EXPIRING, (before, limit))]

    def idle_connections(self, provider: str, before: datetime, limit: int) -> list[TokenKey]:
        return [TokenKey(*row) for row in self._fetchall(IDLE, (provider, before, limit))]

    def put_pending(self, record_id: str, sealed: str, expires_at: datetime) -> None:
        params = (self._clock() - PENDING_GRACE, record_id, sealed, expires_at)
        self._rowcount(PUT_PENDING, params, retry=False)

    def take_pending(self, record_id: str) -> tuple[str, datetime] | None:
        found = self._fetchone(TAKE_PENDING, (record_id,), retry=False)
        return None if found is None else (found[0], found[1].astimezone(UTC))

    def close(self) -> None:
        with self._reserved_lock:
            self._give_back_reserved()
        self._pool.close()
