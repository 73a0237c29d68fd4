"""The asyncio face of the SQLite store: each call of :class:`SqliteTokenStore` runs in a
worker thread, so a busy database file never blocks the event loop."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Sequence
from datetime import datetime

from oauthvault.crypto.sealing import SealedRow
from oauthvault.models import ConnectionQuery, StoredConnection, TokenKey
from oauthvault.storage.base import RefreshLease, RefreshSave, Resealer, RotationBatch
from oauthvault.storage.location import DatabaseLocation
from oauthvault.storage.sqlite import Clock, SqliteLockedRow, SqliteTokenStore, utc_now

__all__ = ["AsyncSqliteLockedRow", "AsyncSqliteTokenStore"]


class AsyncSqliteLockedRow:
    """:class:`SqliteLockedRow` with each call in a worker thread."""

    def __init__(self, locked: SqliteLockedRow) -> None:
        self._locked = locked
        self.row = locked.row
        self.status = locked.status
        self.lease = locked.lease
        self.last_error = locked.last_error

    async def update(self, *, status: str, last_error: str | None) -> None:
        await asyncio.to_thread(
            functools.partial(self._locked.update, status=status, last_error=last_error)
        )

    async def take_lease(self, lease: RefreshLease) -> int:
        return await asyncio.to_thread(self._locked.take_lease, lease)

    async def commit(self) -> None:
        await asyncio.to_thread(self._locked.commit)

    async def rollback(self) -> None:
        await asyncio.to_thread(self._locked.rollback)


class AsyncSqliteTokenStore:
    """The asyncio face of :class:`SqliteTokenStore`: each call runs in a worker thread,
    so a busy database file never blocks the event loop."""

    def __init__(self, location: DatabaseLocation, *, clock: Clock = utc_now) -> None:
        self._location = location
        self._clock = clock
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
            store = await asyncio.to_thread(
                functools.partial(SqliteTokenStore, self._location, clock=self._clock)
            )
            # The event loop thread's own connection (data_version reads it) is made here,
            # once, rather than on the first read.
            store.data_version()
            self._store = store

    async def get(self, key: TokenKey) -> SealedRow | None:
        return await asyncio.to_thread(self.sync_store.get, key)

    async def upsert(self, key: TokenKey, row: SealedRow) -> int:
        return await asyncio.to_thread(self.sync_store.upsert, key, row)

    async def delete(self, key: TokenKey) -> int | None:
        return await asyncio.to_thread(self.sync_store.delete, key)

    async def list_connections(self, query: ConnectionQuery) -> list[StoredConnection]:
        return await asyncio.to_thread(self.sync_store.list_connections, query)

    async def count_by_status(self) -> dict[tuple[str, str], int]:
        return await asyncio.to_thread(self.sync_store.count_by_status)

    async def schema_revision(self) -> str | None:
        return await asyncio.to_thread(self.sync_store.schema_revision)

    async def count_by_key_id(self) -> dict[str, int]:
        return await asyncio.to_thread(self.sync_store.count_by_key_id)

    async def record_invalidations(self, cache_keys: Sequence[str]) -> None:
        await asyncio.to_thread(self.sync_store.record_invalidations, cache_keys)

    async def pending_invalidations(self, limit: int) -> list[str]:
        return await asyncio.to_thread(self.sync_store.pending_invalidations, limit)

    async def clear_invalidations(self, cache_keys: list[str]) -> None:
        await asyncio.to_thread(self.sync_store.clear_invalidations, cache_keys)

    async def reseal_batch(
        self, primary_key_id: str, after_row_id: str | None, limit: int, reseal: Resealer
    ) -> RotationBatch:
        return await asyncio.to_thread(
            self.sync_store.reseal_batch, primary_key_id, after_row_id, limit, reseal
        )

    async def data_version(self) -> int:
        """As :meth:`SqliteTokenStore.data_version`, of the event loop thread's connection.

        Run in the loop's own thread, not a worker: the number is per connection, and the
        local cache compares it with the one this same connection gave before (a PRAGMA
        that reads shared memory, not the file).
        """
        return self.sync_store.data_version()

    async def lock_row(self, key: TokenKey) -> AsyncSqliteLockedRow:
        locked = await asyncio.to_thread(self.sync_store.lock_row, key)
        return AsyncSqliteLockedRow(locked)

    async def release_lease(self, key: TokenKey, owner: str) -> None:
        await asyncio.to_thread(self.sync_store.release_lease, key, owner)

    async def save_refreshed(
        self, key: TokenKey, row: SealedRow | None, save: RefreshSave
    ) -> int | None:
        return await asyncio.to_thread(self.sync_store.save_refreshed, key, row, save)

    async def expiring_connections(self, before: datetime, limit: int) -> list[TokenKey]:
        return await asyncio.to_thread(self.sync_store.expiring_connections, before, limit)

    async def idle_connections(self, provider: str, before: datetime, limit: int) -> list[TokenKey]:
        return await asyncio.to_thread(self.sync_store.idle_connections, provider, before, limit)

    async def put_pending(self, record_id: str, sealed: str, expires_at: datetime) -> None:
        await asyncio.to_thread(self.sync_store.put_pending, record_id, sealed, expires_at)

    async def take_pending(self, record_id: str) -> tuple[str, datetime] | None:
        return await asyncio.to_thread(self.sync_store.take_pending, record_id)

    async def claim_pending(self, record_id: str, expires_at: datetime) -> bool:
        return await asyncio.to_thread(self.sync_store.claim_pending, record_id, expires_at)

    async def close(self) -> None:
        if self._store is not None:
            store, self._store = self._store, None
            # Connections made in worker threads are closed here, from this one: each was
            # opened with check_same_thread=False for exactly this.
            store.close()

    def __repr__(self) -> str:
        return f"AsyncSqliteTokenStore({self.description!r})"
