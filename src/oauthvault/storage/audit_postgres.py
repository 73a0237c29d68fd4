"""The audit trail's table on PostgreSQL: batches appended with ``COPY`` on a connection of
the store's own (autocommit), old entries deleted, pages (and a connection's latest proxied
calls) read on a short connection."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import psycopg

from oauthvault.errors import StorageUnavailable
from oauthvault.storage.audit_store import (
    AuditEntry,
    EntryRefused,
    entry_from_row,
    entry_values,
    unavailable,
)
from oauthvault.storage.location import DatabaseLocation

__all__ = ["PostgresAuditStore"]

COPY = """
COPY oauth_audit (
  at, caller, provider, workspace_id, actor_id, outcome, source, call_method, call_host,
  call_path, call_status, call_error, call_ms, call_response_bytes, call_request_bytes
) FROM STDIN
"""
SELECT = """
SELECT id, at, caller, provider, workspace_id, actor_id, outcome, source, call_method,
  call_host, call_path, call_status, call_error, call_ms, call_response_bytes,
  call_request_bytes
FROM oauth_audit
WHERE workspace_id = %s AND (%s::text IS NULL OR provider = %s)
  AND (%s::text IS NULL OR actor_id = %s) AND (%s::timestamptz IS NULL OR at >= %s)
  AND id > %s
ORDER BY id LIMIT %s
"""
LATEST_CALLS = """
SELECT id, at, caller, provider, workspace_id, actor_id, outcome, source, call_method,
  call_host, call_path, call_status, call_error, call_ms, call_response_bytes,
  call_request_bytes
FROM oauth_audit
WHERE workspace_id = %s AND provider = %s AND actor_id = %s AND outcome = 'proxied'
ORDER BY id DESC LIMIT %s
"""
PRUNE = "DELETE FROM oauth_audit WHERE at < %s"


class PostgresAuditStore:
    """An :class:`~oauthvault.storage.audit_store.AuditStore` on PostgreSQL."""

    def __init__(self, location: DatabaseLocation, *, connect_timeout: int) -> None:
        self._location = location
        self._connect_timeout = connect_timeout
        self._connection: psycopg.Connection[Any] | None = None

    def write(self, batch: Sequence[AuditEntry]) -> None:
        try:
            connection = self._connect()
            # COPY: one round trip and the server's bulk path, whatever the batch size.
            with connection.cursor() as cursor, cursor.copy(COPY) as copy:
                for entry in batch:
                    copy.write_row(entry_values(entry))
        except psycopg.DataError as error:
            raise EntryRefused(type(error).__name__) from None
        except (psycopg.Error, OSError) as error:
            raise self._failed(error) from None

    def prune(self, cutoff: datetime) -> None:
        try:
            self._connect().execute(PRUNE, (cutoff,))
        except (psycopg.Error, OSError) as error:
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
        params = (workspace_id, provider, provider, actor_id, actor_id, since, since, after, limit)
        return self._select(SELECT, params)

    def latest_calls(
        self, workspace_id: str, provider: str, actor_id: str, limit: int
    ) -> list[AuditEntry]:
        return self._select(LATEST_CALLS, (workspace_id, provider, actor_id, limit))

    def _select(self, query: str, params: tuple[object, ...]) -> list[AuditEntry]:
        try:
            with psycopg.connect(
                self._location.conninfo, autocommit=True, connect_timeout=self._connect_timeout
            ) as connection:
                rows = connection.execute(query, params).fetchall()
        except (psycopg.Error, OSError) as error:
            raise self._unavailable(error) from None
        return [entry_from_row(row, row[1]) for row in rows]

    def close(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            try:
                connection.close()
            except psycopg.Error:
                pass

    def _connect(self) -> psycopg.Connection[Any]:
        if self._connection is None:
            self._connection = psycopg.connect(
                self._location.conninfo, autocommit=True, connect_timeout=self._connect_timeout
            )
        return self._connection

    def _failed(self, error: Exception) -> StorageUnavailable:
        """The writer's connection failed: closed, so the next call opens another."""
        self.close()
        return self._unavailable(error)

    def _unavailable(self, error: Exception) -> StorageUnavailable:
        missing = isinstance(error, psycopg.errors.UndefinedTable)
        return unavailable(self._location.description, error, no_table=missing)
