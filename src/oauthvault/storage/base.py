"""What the vault needs from a database, whichever one it is.

The database is the source of truth. It holds sealed rows (never plaintext tokens) and
the cache invalidation log. Every failure to reach it raises ``StorageUnavailable``.
Implementations: :mod:`oauthvault.storage.postgres` and :mod:`oauthvault.storage.sqlite`;
both pass the same contract tests.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from oauthvault.crypto.sealing import SealedRow
from oauthvault.models import ConnectionQuery, StoredConnection, TokenKey

__all__ = [
    "AsyncLockedRow",
    "AsyncTokenStore",
    "LockedRow",
    "RefreshLease",
    "RefreshSave",
    "Resealer",
    "RotationBatch",
    "TokenStore",
]

# Rewrites one row with the newest key; None when the row cannot be decrypted.
Resealer = Callable[[TokenKey, SealedRow], SealedRow | None]


@dataclass(frozen=True, slots=True)
class RotationBatch:
    """The outcome of re-sealing one batch of rows."""

    rotated: list[TokenKey]
    undecryptable: list[TokenKey]
    last_row_id: str | None


@dataclass(frozen=True, slots=True)
class RefreshLease:
    """A refresh in progress on a row: ``owner`` (host, process and a random part) calls
    the provider; the others wait for its result until ``until``."""

    owner: str
    until: datetime


@dataclass(frozen=True, slots=True)
class RefreshSave:
    """What a refresh writes when it ends, and the guard it writes under: the row must
    still be at ``version`` (as the refresh read it) or still leased to ``owner``."""

    version: int
    owner: str
    status: str
    last_error: str | None
    refreshed_at: datetime | None


class LockedRow(Protocol):
    """One connection's row, locked against every other refresher until commit or rollback
    (``SELECT … FOR UPDATE`` on PostgreSQL, ``BEGIN IMMEDIATE`` on SQLite). Held only to
    decide and to take the refresh lease, never across a provider call."""

    @property
    def row(self) -> SealedRow | None: ...
    @property
    def status(self) -> str | None: ...
    @property
    def lease(self) -> RefreshLease | None: ...
    @property
    def last_error(self) -> str | None:
        """The error the last refresh recorded (``None`` after a success)."""
        ...

    def update(self, *, status: str, last_error: str | None) -> None:
        """Write a new status inside the lock."""
        ...

    def take_lease(self, lease: RefreshLease) -> int:
        """Lease the row (moving its version); returns the new version."""
        ...

    def commit(self) -> None: ...
    def rollback(self) -> None:
        """Roll back; never raises (a lost connection has rolled back already)."""
        ...


class AsyncLockedRow(Protocol):
    @property
    def row(self) -> SealedRow | None: ...
    @property
    def status(self) -> str | None: ...
    @property
    def lease(self) -> RefreshLease | None: ...
    @property
    def last_error(self) -> str | None: ...
    async def update(self, *, status: str, last_error: str | None) -> None: ...
    async def take_lease(self, lease: RefreshLease) -> int: ...
    async def commit(self) -> None: ...
    async def rollback(self) -> None: ...


class TokenStore(Protocol):
    """Synchronous storage of sealed token rows."""

    @property
    def description(self) -> str:
        """Where the data lives, with no password (for logs and ``doctor``)."""
        ...

    def open(self) -> None:
        """Connect and check the schema, once (the blocking stores did when made)."""
        ...

    def get(self, key: TokenKey) -> SealedRow | None: ...
    def upsert(self, key: TokenKey, row: SealedRow) -> int:
        """Insert or replace; returns the row's new version."""
        ...

    def delete(self, key: TokenKey) -> int | None:
        """Delete; returns the deleted row's version, or ``None`` if none was stored."""
        ...

    def list_connections(self, query: ConnectionQuery) -> list[StoredConnection]: ...
    def count_by_key_id(self) -> dict[str, int]: ...
    def count_by_status(self) -> dict[tuple[str, str], int]:
        """Connections by (provider, status)."""
        ...

    def schema_revision(self) -> str | None:
        """The schema's migration revision now (``None``: no schema)."""
        ...

    def reseal_batch(
        self, primary_key_id: str, after_row_id: str | None, limit: int, reseal: Resealer
    ) -> RotationBatch: ...
    def record_invalidations(self, cache_keys: Sequence[str]) -> None: ...
    def pending_invalidations(self, limit: int) -> list[str]: ...
    def clear_invalidations(self, cache_keys: list[str]) -> None: ...
    def lock_row(self, key: TokenKey) -> LockedRow: ...
    def release_lease(self, key: TokenKey, owner: str) -> None:
        """Give up ``owner``'s lease (a refresh that ended before reaching the provider)."""
        ...

    def save_refreshed(self, key: TokenKey, row: SealedRow | None, save: RefreshSave) -> int | None:
        """Save a refresh's new tokens (``row``) or status, in one autocommit statement,
        only under ``save``'s guard: the row's new version, or ``None`` when the guard
        failed (nothing written)."""
        ...

    def expiring_connections(self, before: datetime, limit: int) -> list[TokenKey]:
        """Refreshable connections whose access token expires before ``before``."""
        ...

    def idle_connections(self, provider: str, before: datetime, limit: int) -> list[TokenKey]:
        """Refreshable connections of ``provider`` not refreshed (or stored) since ``before``."""
        ...

    def put_pending(self, record_id: str, sealed: str, expires_at: datetime) -> None: ...
    def take_pending(self, record_id: str) -> tuple[str, datetime] | None:
        """Delete and return a one-time record (sealed text, expiry) in one statement."""
        ...

    def claim_pending(self, record_id: str, expires_at: datetime) -> bool:
        """Keep a marker for ``record_id`` until ``expires_at``; False when one is already
        kept (the record was used). Expired markers and records are purged."""
        ...

    def close(self) -> None: ...


class AsyncTokenStore(Protocol):
    """The asyncio twin of :class:`TokenStore`."""

    @property
    def description(self) -> str: ...

    async def open(self) -> None: ...
    async def get(self, key: TokenKey) -> SealedRow | None: ...
    async def upsert(self, key: TokenKey, row: SealedRow) -> int: ...
    async def delete(self, key: TokenKey) -> int | None: ...
    async def list_connections(self, query: ConnectionQuery) -> list[StoredConnection]: ...
    async def count_by_key_id(self) -> dict[str, int]: ...
    async def schema_revision(self) -> str | None: ...
    async def count_by_status(self) -> dict[tuple[str, str], int]: ...
    async def reseal_batch(
        self, primary_key_id: str, after_row_id: str | None, limit: int, reseal: Resealer
    ) -> RotationBatch: ...
    async def record_invalidations(self, cache_keys: Sequence[str]) -> None: ...
    async def pending_invalidations(self, limit: int) -> list[str]: ...
    async def clear_invalidations(self, cache_keys: list[str]) -> None: ...
    async def lock_row(self, key: TokenKey) -> AsyncLockedRow: ...
    async def release_lease(self, key: TokenKey, owner: str) -> None: ...
    async def save_refreshed(
        self, key: TokenKey, row: SealedRow | None, save: RefreshSave
    ) -> int | None: ...
    async def expiring_connections(self, before: datetime, limit: int) -> list[TokenKey]: ...
    async def idle_connections(
        self, provider: str, before: datetime, limit: int
    ) -> list[TokenKey]: ...
    async def put_pending(self, record_id: str, sealed: str, expires_at: datetime) -> None: ...
    async def take_pending(self, record_id: str) -> tuple[str, datetime] | None: ...
    async def claim_pending(self, record_id: str, expires_at: datetime) -> bool: ...
    async def close(self) -> None: ...
