"""What the audit trail keeps, and what it asks of a database engine to keep it.

An :class:`AuditEntry` is one token read, or one call through the API proxy (outcome
``proxied``, its :class:`ProxiedCall` in ``call``). An :class:`AuditStore` appends entries
to the ``oauth_audit`` table in batches, removes those older than a cutoff, reads one
workspace's back a page at a time and a connection's latest proxied calls:
:class:`~oauthvault.storage.audit_postgres.PostgresAuditStore` and
:class:`~oauthvault.storage.audit_sqlite.SQLiteAuditStore`. A store turns its driver's errors
into two: :class:`EntryRefused` for an entry the database will not take (its content),
``StorageUnavailable`` for everything else (it closes its connection first).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, Protocol

from oauthvault.errors import StorageUnavailable

__all__ = [
    "OUTCOMES",
    "AuditEntry",
    "AuditStore",
    "EntryRefused",
    "Outcome",
    "ProxiedCall",
    "entry_from_row",
    "entry_values",
    "unavailable",
]

Outcome = Literal["served", "refreshed", "not_found", "refused", "failed", "proxied"]
#: served: a stored token was handed out; refreshed: one refreshed for this read; not_found:
#: nothing stored; refused: the caller may not have it (workspace not allowed, the user
#: must reconnect, the row does not decrypt); failed: the provider or the database failed;
#: proxied: a call through the API proxy (its details in ``AuditEntry.call``).
OUTCOMES: tuple[Outcome, ...] = (
    "served",
    "refreshed",
    "not_found",
    "refused",
    "failed",
    "proxied",
)


@dataclass(frozen=True, slots=True)
class ProxiedCall:
    """One call through the API proxy: the method, the provider's host (``None`` when the
    vault refused before knowing it) and path (never the query), the status the caller got,
    the vault's problem code when the vault refused (``None`` when the provider answered),
    the milliseconds from the request to the answer's last byte, and the bytes of the
    answer's body (as streamed) and of the request's body."""

    method: str
    host: str | None
    path: str
    status: int
    error: str | None = None
    duration_ms: int = 0
    response_bytes: int = 0
    request_bytes: int = 0

    def as_dict(self) -> dict[str, object]:
        return {
            "method": self.method,
            "host": self.host,
            "path": self.path,
            "status": self.status,
            "error": self.error,
            "duration_ms": self.duration_ms,
            "response_bytes": self.response_bytes,
            "request_bytes": self.request_bytes,
        }


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One token read, or one proxied call (``call``). ``caller`` is an API key's name or a
    library caller's; ``source`` the client's address when known. ``id`` orders entries (0
    until written)."""

    at: datetime
    caller: str
    provider: str
    workspace_id: str
    actor_id: str
    outcome: Outcome
    source: str | None = None
    id: int = 0
    call: ProxiedCall | None = None

    def as_dict(self) -> dict[str, object]:
        return {
            "id": self.id,
            "at": self.at.isoformat(),
            "caller": self.caller,
            "provider": self.provider,
            "workspace_id": self.workspace_id,
            "actor_id": self.actor_id,
            "outcome": self.outcome,
            "source": self.source,
            "call": None if self.call is None else self.call.as_dict(),
        }


class EntryRefused(Exception):
    """The database refused an entry for its content, not for being unreachable; ``reason``
    names the driver's error class."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class AuditStore(Protocol):
    """One engine's ``oauth_audit`` table. ``write`` and ``prune`` share one connection of
    the store's own, opened on first use (the caller serializes them); ``read`` opens a
    short one."""

    def write(self, batch: Sequence[AuditEntry]) -> None:
        """Append ``batch`` in one statement or transaction: all of it, or none.

        Raises:
            EntryRefused: an entry's content was refused.
            StorageUnavailable: the database could not take it.
        """

    def prune(self, cutoff: datetime) -> None:
        """Remove the entries from before ``cutoff``.

        Raises:
            StorageUnavailable: the database could not be reached.
        """

    def read(
        self,
        workspace_id: str,
        provider: str | None,
        actor_id: str | None,
        since: datetime | None,
        after: int,
        limit: int,
    ) -> list[AuditEntry]:
        """One workspace's entries with ``id`` above ``after``, oldest first, at most
        ``limit``, optionally of one provider or actor and from ``since`` on.

        Raises:
            StorageUnavailable: the database cannot be read.
        """

    def latest_calls(
        self, workspace_id: str, provider: str, actor_id: str, limit: int
    ) -> list[AuditEntry]:
        """One connection's latest proxied calls (outcome ``proxied``), newest first, at
        most ``limit``.

        Raises:
            StorageUnavailable: the database cannot be read.
        """

    def close(self) -> None:
        """Close the store's connection, if open (a later call opens another)."""


def entry_values(entry: AuditEntry) -> tuple[object, ...]:
    """An entry's column values, in the order both engines' statements name them (``at,
    caller, provider, workspace_id, actor_id, outcome, source`` and the ``call_*`` ones)."""
    call = entry.call
    return (
        entry.at,
        entry.caller,
        entry.provider,
        entry.workspace_id,
        entry.actor_id,
        entry.outcome,
        entry.source,
        *(
            (None,) * 8
            if call is None
            else (
                call.method,
                call.host,
                call.path,
                call.status,
                call.error,
                call.duration_ms,
                call.response_bytes,
                call.request_bytes,
            )
        ),
    )


def entry_from_row(row: Sequence[Any], at: datetime) -> AuditEntry:
    """An entry of a row read back (``id``, then the columns of :func:`entry_values`);
    ``at`` as the engine gave it back, as a ``datetime``."""
    call = None
    if row[8] is not None:
        call = ProxiedCall(
            row[8],
            row[9],
            row[10] or "",
            int(row[11] or 0),
            row[12],
            int(row[13] or 0),
            int(row[14] or 0),
            int(row[15] or 0),
        )
    return AuditEntry(
        at.astimezone(UTC), row[2], row[3], row[4], row[5], row[6], row[7], int(row[0]), call
    )


def unavailable(description: str, error: Exception, *, no_table: bool) -> StorageUnavailable:
    """The error a store raises when its database failed: one plain reason, never the
    driver's message (it may quote an entry)."""
    if no_table or "no such table" in str(error):
        return StorageUnavailable(
            f"audit trail at {description}: no oauth_audit table (run oauthvault migrate)"
        )
    return StorageUnavailable(f"audit trail at {description}: {type(error).__name__}")
