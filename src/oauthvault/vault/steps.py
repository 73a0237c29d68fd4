"""The I/O steps a vault flow can ask for, as plain values.

A flow (:mod:`oauthvault.vault.flows`, :mod:`oauthvault.vault.refresh`,
:mod:`oauthvault.vault.pending`) is a generator that yields these steps and is sent each
step's result back, as ``httpx.Auth.auth_flow`` is. The sync and the async vault each
perform them in one method; every decision (order, fallbacks, TTLs) stays in the flows.
A step that fails with ``StorageUnavailable`` raises it inside the flow (``throw``), so a
flow can retry; the others propagate it.
"""

from __future__ import annotations

from collections.abc import Generator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeAlias

from oauthvault.crypto.sealing import SealedRow
from oauthvault.models import ClientCredentials, ConnectionEvent, Credentials, TokenKey
from oauthvault.storage.base import RefreshLease, RefreshSave

__all__ = [
    "ClaimPendingRow",
    "CommitLock",
    "DeleteRow",
    "DropCache",
    "Emit",
    "Flow",
    "LeaseWatch",
    "LockRow",
    "Pause",
    "PutPendingRow",
    "ReadRow",
    "RecordInvalidation",
    "RefreshGrant",
    "RowState",
    "SaveRefreshed",
    "Step",
    "TakeCached",
    "TakeLease",
    "TakePendingRow",
    "UpdateLocked",
    "WriteCache",
    "WriteRow",
]


# --- Redis -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class WriteCache:
    """Result: whether Redis answered. With a ``version`` (a token record or tombstone)
    the value replaces only an older (or equal) one, atomically in Redis; without one
    (one-time records) it is a plain SET."""

    cache_key: str
    value: bytes = field(repr=False)
    ttl: int
    version: int | None = None

    @property
    def cache_keys(self) -> tuple[str, ...]:
        """The key written, as :class:`DropCache` names its keys."""
        return (self.cache_key,)


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
    """Result: the row's new version."""

    key: TokenKey
    row: SealedRow


@dataclass(frozen=True, slots=True)
class DeleteRow:
    """Result: the deleted row's version, or ``None`` when there was none."""

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


@dataclass(frozen=True, slots=True)
class ClaimPendingRow:
    """Result: True when ``record_id`` was not claimed before (its marker is now kept
    until ``expires_at``), False when it was."""

    record_id: str
    expires_at: datetime


# --- the refresh lock and lease -----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RowState:
    """What :class:`LockRow` found: the row (``None``: nothing stored), its status, the
    refresh lease on it, if any, and the error the last refresh recorded."""

    row: SealedRow | None
    status: str | None
    lease: RefreshLease | None
    last_error: str | None = None


@dataclass(frozen=True, slots=True)
class LockRow:
    """Result: a :class:`RowState`; the row stays locked until :class:`CommitLock` (or
    until the flow ends, when it is rolled back)."""

    key: TokenKey


@dataclass(frozen=True, slots=True)
class UpdateLocked:
    """Write a new status inside the lock."""

    status: str
    last_error: str | None


@dataclass(frozen=True, slots=True)
class TakeLease:
    """Result: the row's new version. Lease the locked row to this refresh (committed by
    the :class:`CommitLock` that follows, before the provider is called)."""

    key: TokenKey
    lease: RefreshLease


@dataclass(frozen=True, slots=True)
class CommitLock:
    """Commit what was written inside the lock and release it."""


@dataclass(frozen=True, slots=True)
class SaveRefreshed:
    """Result: the row's new version, or ``None`` when the guard failed (someone else
    wrote the row since). Raises ``StorageUnavailable`` into the flow, which retries."""

    key: TokenKey
    row: SealedRow | None
    save: RefreshSave


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
    # Set for an ``app`` or ``two_step`` connection: a token is minted from these instead.
    minted: Credentials | None = field(default=None, repr=False)


@dataclass(frozen=True, slots=True)
class Pause:
    seconds: float


@dataclass(frozen=True, slots=True)
class Emit:
    """Tell the application (``on_event``); never fails the flow."""

    event: ConnectionEvent


@dataclass(slots=True)
class LeaseWatch:
    """What a driver tracks of a running flow's refresh lease, so that a flow ended by an
    exception (a cancelled task, a failed discovery) gives its lease back when the provider
    cannot have used the refresh token yet, instead of making every other caller wait for
    it to run out."""

    key: TokenKey | None = None
    owner: str = ""
    # True from the moment a grant request may have left until its answer says otherwise.
    consumed: bool = False

    def taken(self, key: TokenKey, owner: str) -> None:
        self.key, self.owner, self.consumed = key, owner, False

    def grant_sent(self) -> None:
        self.consumed = True

    def grant_answered(self, outcome: str, retry_safe: bool) -> None:
        # "ok": the token was used (and maybe rotated); a transient failure that is not
        # retry-safe may have reached the provider.
        self.consumed = outcome == "ok" or (outcome == "transient" and not retry_safe)

    def saved(self) -> None:
        self.key = None  # the saving statement cleared the lease

    def to_release(self) -> tuple[TokenKey, str] | None:
        if self.key is None or self.consumed:
            return None
        return self.key, self.owner


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
    | ClaimPendingRow
    | LockRow
    | UpdateLocked
    | TakeLease
    | CommitLock
    | SaveRefreshed
    | RefreshGrant
    | Pause
    | Emit
)
Flow: TypeAlias = Generator[Step, Any, Any]
