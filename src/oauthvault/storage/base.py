"""What the vault needs from a database, whichever one it is.

The database is the source of truth. It holds sealed rows (never plaintext tokens) and
the cache invalidation log. Implementations: :mod:`oauthvault.storage.postgres` and
:mod:`oauthvault.storage.sqlite`; both pass the same contract tests.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from oauthvault.crypto.sealing import SealedRow
from oauthvault.models import StoredConnection, TokenKey

__all__ = [
    "AsyncLockedRow",
    "AsyncTokenStore",
    "LockedRow",
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


class LockedRow(Protocol):
    """One connection's row, locked against every other refresher until commit or rollback
    (``SELECT … FOR UPDATE`` on PostgreSQL, ``BEGIN IMMEDIATE`` on SQLite)."""

    @property
    def row(self) -> SealedRow | None: ...
    @property
    def status(self) -> str | None: ...
    def update(
        self,
        row: SealedRow | None,
        *,
        status: str,
        last_error: str | None,
        refreshed_at: datetime | None,
    ) -> None:
        """Write new tokens (``row``, if given) and status inside the lock."""
        ...

    def commit(self) -> None: ...
    def rollback(self) -> None: ...


class AsyncLockedRow(Protocol):
    @property
    def row(self) -> SealedRow | None: ...
    @property
    def status(self) -> str | None: ...
    async def update(
        self,
        row: SealedRow | None,
        *,
        status: str,
        last_error: str | None,
        refreshed_at: datetime | None,
    ) -> None: ...
    async def commit(self) -> None: ...
    async def rollback(self) -> None: ...


class TokenStore(Protocol):
    """Synchronous storage of sealed token rows."""

    @property
    def description(self) -> str:
        """Where the data lives, with no password (for logs and ``doctor``)."""
        ...

    def get(self, key: TokenKey) -> SealedRow | None: ...
    def upsert(self, key: TokenKey, row: SealedRow) -> None: ...
    def delete(self, key: TokenKey) -> bool: ...
    def list_connections(
        self, provider: str | None, workspace_id: str | None, limit: int
    ) -> list[StoredConnection]: ...
    def count_by_key_id(self) -> dict[str, int]: ...
    def reseal_batch(
        self, primary_key_id: str, after_row_id: str | None, limit: int, reseal: Resealer
    ) -> RotationBatch: ...
    def record_invalidations(self, cache_keys: Sequence[str]) -> None: ...
    def pending_invalidations(self, limit: int) -> list[str]: ...
    def clear_invalidations(self, cache_keys: list[str]) -> None: ...
    def lock_row(self, key: TokenKey) -> LockedRow: ...
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

    def close(self) -> None: ...


class AsyncTokenStore(Protocol):
    """The asyncio twin of :class:`TokenStore` (rotation stays a sync, offline task)."""

    @property
    def description(self) -> str: ...

    async def open(self) -> None: ...
    async def get(self, key: TokenKey) -> SealedRow | None: ...
    async def upsert(self, key: TokenKey, row: SealedRow) -> None: ...
    async def delete(self, key: TokenKey) -> bool: ...
    async def list_connections(
        self, provider: str | None, workspace_id: str | None, limit: int
    ) -> list[StoredConnection]: ...
    async def count_by_key_id(self) -> dict[str, int]: ...
    async def record_invalidations(self, cache_keys: Sequence[str]) -> None: ...
    async def pending_invalidations(self, limit: int) -> list[str]: ...
    async def clear_invalidations(self, cache_keys: list[str]) -> None: ...
    async def lock_row(self, key: TokenKey) -> AsyncLockedRow: ...
    async def expiring_connections(self, before: datetime, limit: int) -> list[TokenKey]: ...
    async def idle_connections(
        self, provider: str, before: datetime, limit: int
    ) -> list[TokenKey]: ...
    async def put_pending(self, record_id: str, sealed: str, expires_at: datetime) -> None: ...
    async def take_pending(self, record_id: str) -> tuple[str, datetime] | None: ...
    async def close(self) -> None: ...
