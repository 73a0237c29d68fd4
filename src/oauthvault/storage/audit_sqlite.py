"""The audit trail's table in the SQLite file: batches appended in one ``BEGIN IMMEDIATE``
transaction on a connection of the store's own, old entries deleted, pages (and a
connection's latest proxied calls) read on a short connection. Times are stored as UTC ISO
8601 text with microseconds (they sort as text)."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from contextlib import closing
from datetime import UTC, datetime

from oauthvault.errors import StorageUnavailable
from oauthvault.storage.audit_store import (
    AuditEntry,
    EntryRefused,
    entry_from_row,
    entry_values,
    unavailable,
)
from oauthvault.storage.location import DatabaseLocation

__all__ = ["SQLiteAuditStore"]

INSERT = """
INSERT INTO oauth_audit (
  at, caller, provider, workspace_id, actor_id, outcome, source, call_method, call_host,
  call_path, call_status, call_error, call_ms, call_response_bytes, call_request_bytes
) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
"""
SELECT = """
SELECT id, at, caller, provider, workspace_id, actor_id, outcome, source, call_method,
  call_host, call_path, call_status, call_error, call_ms, call_response_bytes,
  call_request_bytes
FROM oauth_audit
WHERE workspace_id = ? AND (? IS NULL OR provider = ?) AND (? IS NULL OR actor_id = ?)
  AND (? IS NULL OR at >= ?) AND id > ?
ORDER BY id LIMIT ?
"""
LATEST_CALLS = """
SELECT id, at, caller, provider, workspace_id, actor_id, outcome, source, call_method,
  call_host, call_path, call_status, call_error, call_ms, call_response_bytes,
  call_request_bytes
FROM oauth_audit
WHERE workspace_id = ? AND provider = ? AND actor_id = ? AND outcome = 'proxied'
ORDER BY id DESC LIMIT ?
"""
PRUNE = "DELETE FROM oauth_audit WHERE at < ?"

# What SQLite refuses for an entry's content rather than for being unreachable.
_REFUSED = (sqlite3.ProgrammingError, sqlite3.IntegrityError, sqlite3.InterfaceError)


def _stored_time(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


class SQLiteAuditStore:
    """An :class:`~oauthvault.storage.audit_store.AuditStore` in a SQLite file."""

    def __init__(self, location: DatabaseLocation) -> None:
        self._location = location
        self._connection: sqlite3.Connection | None = None

    def write(self, batch: Sequence[AuditEntry]) -> None:
        rows = [(_stored_time(entry.at), *entry_values(entry)[1:]) for entry in batch]
        try:
            connection = self._connect()
            connection.execute("BEGIN IMMEDIATE")
            try:
                connection.executemany(INSERT, rows)
            except BaseException:
                connection.execute("ROLLBACK")
                raise
            connection.execute("COMMIT")
        except _REFUSED as error:
            raise EntryRefused(type(error).__name__) from None
        except (sqlite3.Error, OSError) as error:
            raise self._failed(error) from None

    def prune(self, cutoff: datetime) -> None:
        try:
            self._connect().execute(PRUNE, (_stored_time(cutoff),))
        except (sqlite3.Error, OSError) as error:
            raise self._failed(error) from None

    def read(
        self,
        workspace_id: str,
        provider: str | None,
        actor_id: str | None,
        since: datetime | None,
        after: int,
        limit: int,
    ) -> list[AuditEntry]:
        moment = None if since is None else _stored_time(since)
        params = (
            workspace_id,
            provider,
            provider,
            actor_id,
            actor_id,
            moment,
            moment,
            after,
            limit,
        )
        return self._select(SELECT, params)

    def latest_calls(
        self, workspace_id: str, provider: str, actor_id: str, limit: int
    ) -> list[AuditEntry]:
        return self._select(LATEST_CALLS, (workspace_id, provider, actor_id, limit))

    def _select(self, query: str, params: tuple[object, ...]) -> list[AuditEntry]:
        path = self._location.sqlite_path
        if path is not None and not path.exists():  # never create a database by reading
            raise StorageUnavailable(f"no database at {self._location.description}")
        try:
            with closing(sqlite3.connect(str(path), timeout=5.0)) as db:
                rows = db.execute(query, params).fetchall()
        except (sqlite3.Error, OSError) as error:
            raise unavailable(self._location.description, error, no_table=False) from None
        return [entry_from_row(row, datetime.fromisoformat(row[1])) for row in rows]

    def close(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            try:
                connection.close()
            except sqlite3.Error:
                pass

    def _connect(self) -> sqlite3.Connection:
        if self._connection is None:
            self._connection = sqlite3.connect(
                str(self._location.sqlite_path),
                timeout=5.0,
                isolation_level=None,
                check_same_thread=False,
            )
        return self._connection

    def _failed(self, error: Exception) -> StorageUnavailable:
        """The writer's connection failed: closed, so the next call opens another."""
        self.close()
        return unavailable(self._location.description, error, no_table=False)
