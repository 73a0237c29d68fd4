"""Statements on one PostgreSQL server: a pool, a reserved connection, and the outage gate.

:class:`AsyncPostgresRunner` (in :mod:`oauthvault.storage.postgres_runner_async`, the
hand-written source) and ``PostgresRunner`` (in :mod:`oauthvault.storage.postgres_runner`,
generated from it by ``scripts/async_to_sync.py``) are what the stores and their locked rows
run their SQL through; they know no SQL of their own.

Every single-row call is one autocommit statement, on the **reserved connection** when it
is free (one pooled connection kept out of the pool for whichever call finds it free, so
most calls cost no check-out), else on a pooled one. Every failure is a
``StorageUnavailable``; after a connection breaks, the
:class:`~oauthvault.storage.outage.OutageGate` makes calls fail fast while the server is
away and moves them to a new pool as soon as it is back.

A call interrupted mid-statement (a cancelled task, a ``KeyboardInterrupt``) leaves its
connection in an unknown state: the connection is closed rather than rolled back, and
handed back for the pool to drop. Both flavours do this on purpose.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import psycopg
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from oauthvault.errors import StorageUnavailable
from oauthvault.storage.outage import OutageGate
from oauthvault.storage.postgres_base import POOL_ERRORS, RESERVED_FOR, PoolSettings, unavailable

__all__ = ["AsyncPostgresRunner", "fetch_all", "fetch_one", "row_count"]

T = TypeVar("T")


async def fetch_one(cursor: psycopg.AsyncCursor[Any]) -> Any:
    return await cursor.fetchone()


async def fetch_all(cursor: psycopg.AsyncCursor[Any]) -> list[Any]:
    return await cursor.fetchall()


async def row_count(cursor: psycopg.AsyncCursor[Any]) -> int:
    return cursor.rowcount


class AsyncPostgresRunner:
    """Runs statements on the server ``settings`` name; see the module docstring."""

    def __init__(self, settings: PoolSettings) -> None:
        self.settings = settings
        self._gate = OutageGate()
        self._swap_lock = asyncio.Lock()
        self._pool = self._new_pool()
        # The reserved connection; its lock is only ever taken without waiting, so a call
        # that finds it busy uses the pool instead (and an event loop never blocks on it).
        self._reserved_lock = threading.Lock()
        self._reserved: psycopg.AsyncConnection[Any] | None = None
        self._reserved_pool: AsyncConnectionPool | None = None
        self._reserved_until = 0.0
        if True:  # ASYNC
            # Old pools close in tasks, awaited by close().
            self._closing: set[asyncio.Task[None]] = set()

    @property
    def description(self) -> str:
        return self.settings.description

    def _new_pool(self) -> AsyncConnectionPool:
        if True:  # ASYNC
            name = "oauthvault-async"
        else:
            name = "oauthvault"
        return AsyncConnectionPool(self.settings.conninfo, **self.settings.pool_arguments(name))

    async def fetch_direct(self, query: str) -> Any:
        """The first row of ``query`` on a connection of its own, outside the pool: when
        the server cannot be reached its error names the reason (refused, unknown host, bad
        password) at once, where a pool would retry in the background and time out saying
        only that it did.

        Raises:
            psycopg.errors.UndefinedTable: as psycopg raises it (no schema yet).
            StorageUnavailable: the server cannot be reached.
        """
        try:
            async with await psycopg.AsyncConnection.connect(
                self.settings.conninfo, **self.settings.connection_options
            ) as connection:
                return await (await connection.execute(query)).fetchone()
        except psycopg.errors.UndefinedTable:
            raise
        except psycopg.Error as error:
            raise unavailable(self.description, error) from None

    async def open(self) -> None:
        """Open the pool and wait for its first connection (``connect_timeout``).

        Raises:
            StorageUnavailable: no connection came; the runner can be opened again.
        """
        try:
            await self._pool.open(wait=True, timeout=self.settings.connect_timeout)
        except (psycopg.Error, PoolTimeout) as error:
            # A closed psycopg pool cannot be reopened: a new one for the next attempt.
            await self._pool.close()
            self._pool = self._new_pool()
            raise unavailable(self.description, error) from None

    def failure(
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
        return unavailable(self.description, error)

    def _server_answers(self) -> bool:
        """Whether a direct connection works now."""
        if True:  # ASYNC
            return False  # an event loop cannot block here: the gate's probe checks instead
        else:
            try:
                psycopg.connect(self.settings.conninfo, **self.settings.connection_options).close()
            except psycopg.Error:
                return False
            return True

    def _still_down(self) -> StorageUnavailable:
        return StorageUnavailable(
            f"PostgreSQL at {self.description}: unavailable for "
            f"{self._gate.seconds_down():.1f} s (checking again every fraction of a second)"
        )

    async def usable_pool(self) -> AsyncConnectionPool:
        """The pool, or (after a connection broke) a new one once a probe reaches the
        server.

        Raises:
            StorageUnavailable: at once, while the server is away.
        """
        if self._gate.is_open:
            return self._pool
        if not self._gate.claim_probe():
            raise self._still_down()
        async with self._swap_lock:
            if self._gate.is_open:
                return self._pool
            try:
                probe = await psycopg.AsyncConnection.connect(
                    self.settings.conninfo, **self.settings.connection_options
                )
                await probe.close()
            except psycopg.Error as error:
                raise unavailable(self.description, error) from None
            old, self._pool = self._pool, self._new_pool()
            await self._pool.open(wait=False)
            self._gate.open()
        # Closed aside: its workers may still be waiting on a connection attempt. The
        # connections still out are closed as they come back.
        if True:  # ASYNC
            closing = asyncio.create_task(old.close())
            self._closing.add(closing)
            closing.add_done_callback(self._closing.discard)
        else:
            threading.Thread(target=old.close, name="oauthvault-old-pool", daemon=True).start()
        return self._pool

    async def run(
        self,
        query: str,
        params: Any,
        read: Callable[[psycopg.AsyncCursor[Any]], Awaitable[T]],
        *,
        retry: bool,
    ) -> T:
        """Execute one autocommit statement and ``read`` its result, on the reserved
        connection when it is free, else on a pooled one; an idempotent one (``retry``) is
        tried once more when its connection turned out broken (a server restart the pool
        had not noticed yet) or its pool was replaced meanwhile, on the new pool.

        Raises:
            StorageUnavailable: the statement could not be run.
        """
        for attempt in (1, 2):
            pool = await self.usable_pool()
            try:
                if self._reserved_lock.acquire(blocking=False):
                    try:
                        return await self._run_reserved(pool, query, params, read)
                    finally:
                        try:
                            if self._reserved_pool is not None and self._reserved_pool.closed:
                                await self._give_back_reserved()  # closed meanwhile
                        finally:
                            self._reserved_lock.release()
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
        # getconn/putconn rather than pool.connection(): an autocommit statement needs
        # none of its transaction handling.
        try:
            connection = await pool.getconn()
        except psycopg.Error as error:  # PoolTimeout, PoolClosed
            raise self.failure(error, pool) from None
        try:
            return await read(await connection.execute(query, params, prepare=True))
        except psycopg.Error as error:
            raise self.failure(error, pool, connection) from None
        finally:
            await pool.putconn(connection)

    async def _run_reserved(
        self,
        pool: AsyncConnectionPool,
        query: str,
        params: Any,
        read: Callable[[psycopg.AsyncCursor[Any]], Awaitable[T]],
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
            await self._give_back_reserved()
            try:
                connection = await pool.getconn()
            except psycopg.Error as error:  # PoolTimeout, PoolClosed
                raise self.failure(error, pool) from None
            self._reserved, self._reserved_pool = connection, pool
            self._reserved_until = time.monotonic() + RESERVED_FOR
        try:
            return await read(await connection.execute(query, params, prepare=True))
        except psycopg.Error as error:
            failure = self.failure(error, pool, connection)
            await self._give_back_reserved()
            raise failure from None
        except BaseException:  # interrupted mid-statement: the pool resets or replaces it
            await self._give_back_reserved()
            raise

    async def _give_back_reserved(self) -> None:
        connection, pool = self._reserved, self._reserved_pool
        self._reserved = self._reserved_pool = None
        if connection is not None and pool is not None:
            await pool.putconn(connection)  # a closed pool closes it

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
        """A pooled connection inside a transaction, committed when the block ends (rolled
        back if it raises).

        Raises:
            StorageUnavailable: the connection or a statement failed.
        """
        pool = await self.usable_pool()
        try:
            async with pool.connection() as connection:
                try:
                    async with connection.transaction():
                        yield connection
                except psycopg.Error as error:
                    raise self.failure(error, pool, connection) from None
        except psycopg.Error as error:  # from the pool: PoolTimeout, PoolClosed
            raise self.failure(error, pool) from None

    async def checkout(self) -> tuple[AsyncConnectionPool, psycopg.AsyncConnection[Any]]:
        """A pooled connection of its own (a locked row's), and the pool to hand it back
        to with :meth:`check_in`.

        Raises:
            StorageUnavailable: the server is away or the pool has none to give.
        """
        pool = await self.usable_pool()
        try:
            return pool, await pool.getconn()
        except psycopg.Error as error:  # PoolTimeout, PoolClosed (a pool just replaced)
            raise self.failure(error, pool) from None

    async def check_in(
        self,
        pool: AsyncConnectionPool,
        connection: psycopg.AsyncConnection[Any],
        *,
        discard: bool = False,
    ) -> None:
        """Hand back a connection from :meth:`checkout`; with ``discard`` (its state is
        unknown: interrupted mid-statement) it is closed first, releasing any lock it held,
        and the pool drops it."""
        if discard:
            await connection.close()
        await pool.putconn(connection)

    async def close(self) -> None:
        """Close the pool and every connection of it, the reserved one included; the runner
        can be opened again (on a new pool)."""
        if True:  # ASYNC
            for closing in list(self._closing):
                await closing
            await self._pool.close()
            # One event loop: a call still using the reserved connection hands it back to the
            # closed pool (which closes it) when it ends; one that took it before the pool
            # closed, and is done, left it here.
            if self._reserved_lock.acquire(blocking=False):
                try:
                    await self._give_back_reserved()
                finally:
                    self._reserved_lock.release()
        else:
            with self._reserved_lock:  # waits for a call using it; none takes it meanwhile
                self._give_back_reserved()
                self._pool.close()
        self._pool = self._new_pool()  # unopened: a closed psycopg pool cannot be reopened
