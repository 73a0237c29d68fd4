"""The I/O steps a vault flow can ask for, as plain values.

A flow (:mod:`oauthvault.vault.flows`, :mod:`oauthvault.vault.refresh`,
:mod:`oauthvault.vault.pending`) is a generator that yields these steps and is sent each
step's result back, as ``httpx.Auth.auth_flow`` is. The sync and the async vault each
perform them in one method; every decision (order, fallbacks, TTLs) stays in the flows.
"""

from __future__ import annotations

from collections.abc import Generator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeAlias

from oauthvault.crypto.sealing import SealedRow
from oauthvault.models import ClientCredentials, ConnectionEvent, TokenKey

__all__ = [
    "CommitLock",
    "DeleteRow",
    "DropCache",
    "Emit",
    "Flow",
    "LockRow",
    "Pause",
    "PutPendingRow",
    "ReadRow",
    "RecordInvalidation",
    "RefreshGrant",
    "Step",
    "TakeCached",
    "TakePendingRow",
    "UpdateLocked",
    "WriteCache",
    "WriteRow",
]


# --- Redis -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class WriteCache:
    """Result: whether Redis took the value."""

    cache_key: str
    value: bytes = field(repr=False)
    ttl: int
    only_if_absent: bool = False


@dataclass(frozen=True, slots=True)
class DropCache:
    """Result: whether Redis confirmed the delete of every key."""

    cache_keys: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class TakeCached:
    """Result: the value, deleted in the same command (GETDEL), or ``None`` when absent or
    Redis is unavailable."""

    cache_key: str


# --- the database --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ReadRow:
    """Result: the :class:`SealedRow`, or ``None``."""

    key: TokenKey


@dataclass(frozen=True, slots=True)
class WriteRow:
    key: TokenKey
    row: SealedRow


@dataclass(frozen=True, slots=True)
class DeleteRow:
    """Result: whether a row was deleted."""

    key: TokenKey


@dataclass(frozen=True, slots=True)
class RecordInvalidation:
    """Remember in the database that Redis may hold stale values for these keys."""

    cache_keys: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class PutPendingRow:
    """Keep a sealed one-time record in the database until ``expires_at``."""

    record_id: str
    sealed: str = field(repr=False)
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class TakePendingRow:
    """Result: the sealed record, deleted in the same statement, or ``None``."""

    record_id: str


# --- the refresh lock ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LockRow:
    """Result: ``(SealedRow | None, status | None)``; the row stays locked until
    :class:`CommitLock` (or until the flow ends, when it is rolled back)."""

    key: TokenKey


@dataclass(frozen=True, slots=True)
class UpdateLocked:
    """Write new tokens (``row``, if given) and the status inside the lock."""

    row: SealedRow | None
    status: str
    last_error: str | None
    refreshed_at: datetime | None


@dataclass(frozen=True, slots=True)
class CommitLock:
    """Commit what UpdateLocked wrote and release the lock."""


# --- the provider and the application ------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RefreshGrant:
    """Result: a :class:`~oauthvault.oauth.refresh_grant.GrantResult`."""

    provider: str
    refresh_token: str = field(repr=False)
    params: Mapping[str, str] = field(default_factory=dict)
    # The token answer kept from before (a second token set may live in it: Slack's user).
    response: Mapping[str, Any] | None = field(default=None, repr=False)
    # Set for a client-credentials connection: the grant is client_credentials instead.
    credentials: ClientCredentials | None = field(default=None, repr=False)
    scope: str | None = None


@dataclass(frozen=True, slots=True)
class Pause:
    seconds: float


@dataclass(frozen=True, slots=True)
class Emit:
    """Tell the application (``on_event``); never fails the flow."""

    event: ConnectionEvent


Step: TypeAlias = (
    WriteCache
    | DropCache
    | TakeCached
    | ReadRow
    | WriteRow
    | DeleteRow
    | RecordInvalidation
    | PutPendingRow
    | TakePendingRow
    | LockRow
    | UpdateLocked
    | CommitLock
    | RefreshGrant
    | Pause
    | Emit
)
Flow: TypeAlias = Generator[Step, Any, Any]
