"""The audit trail of token reads: who was handed which connection's token, when, with what
outcome and from where. Never a token.

:meth:`AuditTrail.record` only queues an entry (no I/O, safe from any thread or event
loop); one background thread writes the queue in batches on its own database connection
(the ``oauth_audit`` table: append-only, old rows removed after the retention) and keeps
entries it could not write for the next attempt. :meth:`AuditTrail.close` writes what is
still queued, so a clean stop (``close()``, SIGTERM to the service or the worker) loses
nothing; a crash (SIGKILL, power loss) loses what was queued since the last write: at most
``flush_interval`` seconds' worth (0.25 s). A queue that outgrows ``max_queue`` (the
database away for long) drops new entries and counts them (``dropped``).
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from contextlib import closing
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import psycopg

from oauthvault.errors import InvalidInput, StorageUnavailable, VaultError
from oauthvault.failures import FailureKind, classify
from oauthvault.storage.location import DatabaseLocation

__all__ = ["OUTCOMES", "AuditEntry", "AuditTrail", "Outcome", "outcome_of"]

logger = logging.getLogger("oauthvault.audit")

Outcome = Literal["served", "refreshed", "not_found", "refused", "failed"]
#: served: a stored token was handed out; refreshed: one refreshed for this read; not_found:
#: nothing stored; refused: the caller may not have it (workspace not allowed, the user
#: must reconnect, the row does not decrypt); failed: the provider or the database failed.
OUTCOMES: tuple[Outcome, ...] = ("served", "refreshed", "not_found", "refused", "failed")
MAX_READ = 1000


def outcome_of(error: VaultError) -> Outcome | None:
    """How a read that raised ``error`` is recorded; ``None`` for invalid ids (not kept)."""
    match classify(error).kind:
        case FailureKind.INVALID_INPUT:
            return None
        case FailureKind.NOT_FOUND:
            return "not_found"
        case FailureKind.REAUTHORIZATION_REQUIRED | FailureKind.DECRYPTION_ERROR:
            return "refused"
        case _:
            return "failed"


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One token read. ``caller`` is an API key's name or a library caller's; ``source`` the
    client's address when known. ``id`` orders entries (0 until written)."""

    at: datetime
    caller: str
    provider: str
    workspace_id: str
    actor_id: str
    outcome: Outcome
    source: str | None = None
    id: int = 0

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
        }


_PG_COPY = (
    "COPY oauth_audit (at, caller, provider, workspace_id, actor_id, outcome, source) FROM STDIN"
)
_SQLITE_INSERT = """
INSERT INTO oauth_audit (at, caller, provider, workspace_id, actor_id, outcome, source)
VALUES (?, ?, ?, ?, ?, ?, ?)
"""
_PG_SELECT = """
SELECT id, at, caller, provider, workspace_id, actor_id, outcome, source FROM oauth_audit
WHERE workspace_id = %s AND (%s::text IS NULL OR provider = %s)
  AND (%s::text IS NULL OR actor_id = %s) AND (%s::timestamptz IS NULL OR at >= %s)
  AND id > %s
ORDER BY id LIMIT %s
"""
_SQLITE_SELECT = """
SELECT id, at, caller, provider, workspace_id, actor_id, outcome, source FROM oauth_audit
WHERE workspace_id = ? AND (? IS NULL OR provider = ?) AND (? IS NULL OR actor_id = ?)
  AND (? IS NULL OR at >= ?) AND id > ?
ORDER BY id LIMIT ?
"""
_PG_PRUNE = "DELETE FROM oauth_audit WHERE at < %s"
_SQLITE_PRUNE = "DELETE FROM oauth_audit WHERE at < ?"


# What a database refuses for an entry's content rather than for being unreachable.
_REFUSED_DATA = (
    psycopg.DataError,
    sqlite3.ProgrammingError,
    sqlite3.IntegrityError,
    sqlite3.InterfaceError,
)


def _clean(text: object, limit: int) -> str | None:
    if text is None:
        return None
    value = (text if isinstance(text, str) else type(text).__name__)[:limit]
    if value.isascii() and value.isprintable():  # an API key name, an address: as is
        return value
    value = "".join("?" if not char.isprintable() else char for char in value)
    return value.encode("utf-8", "replace").decode("utf-8")


def _sqlite_time(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


class AuditTrail:
    """Queues entries and writes them in batches (see the module). Start it with
    :meth:`start`; :meth:`close` stops it after writing what is queued."""

    def __init__(
        self,
        location: DatabaseLocation,
        *,
        retention_days: int = 90,
        flush_interval: float = 0.25,
        batch_size: int = 1000,
        max_queue: int = 100_000,
        connect_timeout: float = 3.0,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._location = location
        self._retention = timedelta(days=retention_days)
        self._flush_interval = flush_interval
        self._batch_size = batch_size
        self._max_queue = max_queue
        self._connect_timeout = max(1, round(connect_timeout))
        self._clock = clock
        self._queue: deque[AuditEntry] = deque()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._write_lock = threading.Lock()
        self._connection: Any = None
        self._next_prune = 0.0
        self._thread: threading.Thread | None = None
        self.dropped = 0
        self.written = 0

    @property
    def queued(self) -> int:
        return len(self._queue)

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="oauthvault-audit", daemon=True)
            self._thread.start()

    def record(
        self,
        caller: str,
        provider: str,
        workspace_id: str,
        actor_id: str,
        outcome: Outcome,
        source: str | None = None,
    ) -> None:
        """Queue one entry (no I/O). ``caller`` and ``source`` are cleaned (controls
        replaced, cut to 100 and 255 characters): no entry is one the database refuses."""
        caller, source = _clean(caller, 100) or "-", _clean(source, 255)
        if len(self._queue) >= self._max_queue:
            if self.dropped == 0:
                logger.error("audit queue full (%d): dropping entries", self._max_queue)
            self.dropped += 1
            return
        self._queue.append(
            AuditEntry(self._clock(), caller, provider, workspace_id, actor_id, outcome, source)
        )
        if len(self._queue) >= self._batch_size:
            self._wake.set()

    def flush(self) -> None:
        """Write everything queued now.

        Raises:
            StorageUnavailable: the database could not take them (they stay queued).
        """
        with self._write_lock:
            while self._queue:
                batch = [
                    self._queue.popleft() for _ in range(min(self._batch_size, len(self._queue)))
                ]
                try:
                    self._write(batch)
                except _REFUSED_DATA:
                    self._write_one_by_one(batch)
                    continue
                except (psycopg.Error, sqlite3.Error, OSError) as error:
                    self._queue.extendleft(reversed(batch))  # kept, in order, for the next try
                    self._disconnect()
                    raise self._unavailable(error) from None
                self.written += len(batch)

    def _write_one_by_one(self, batch: Sequence[AuditEntry]) -> None:
        """A batch the database refused for its content: keep every entry it takes, drop
        (and count) the others, so that one bad entry never blocks the trail."""
        for index, entry in enumerate(batch):
            try:
                self._write([entry])
            except _REFUSED_DATA as error:
                self.dropped += 1
                logger.error(
                    "audit entry refused by the database (%s): dropped", type(error).__name__
                )
            except (psycopg.Error, sqlite3.Error, OSError) as error:
                self._queue.extendleft(reversed(batch[index:]))
                self._disconnect()
                raise self._unavailable(error) from None
            else:
                self.written += 1

    def _unavailable(self, error: Exception) -> StorageUnavailable:
        if isinstance(error, psycopg.errors.UndefinedTable) or "no such table" in str(error):
            return StorageUnavailable(
                f"audit trail at {self._location.description}: no oauth_audit table "
                "(run oauthvault migrate)"
            )
        return StorageUnavailable(
            f"audit trail at {self._location.description}: {type(error).__name__}"
        )

    def close(self) -> None:
        """Stop the writer and write what is still queued. Entries recorded afterwards are
        written by the next :meth:`flush` (or another ``close``)."""
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        try:
            self.flush()
        except StorageUnavailable as error:
            logger.error("%s: %d audit entries not written", error, len(self._queue))
        finally:
            self._disconnect()

    def read(
        self,
        workspace_id: str,
        *,
        provider: str | None = None,
        actor_id: str | None = None,
        since: datetime | None = None,
        after: int = 0,
        limit: int = 100,
    ) -> list[AuditEntry]:
        """One workspace's entries, oldest first, with ``id`` above ``after`` (the last one
        of the page before), at most ``limit`` (1 to 1000).

        Raises:
            InvalidInput: ``limit`` or ``after`` out of range, ``since`` without a zone.
            StorageUnavailable: the database cannot be read.
        """
        if not 1 <= limit <= MAX_READ:
            raise InvalidInput("limit", f"must be from 1 to {MAX_READ}")
        if after < 0:
            raise InvalidInput("after", "must not be negative")
        if since is not None and since.tzinfo is None:
            raise InvalidInput("since", "must include a time zone")
        path = self._location.sqlite_path
        if self._location.kind == "sqlite" and path is not None and not path.exists():
            raise StorageUnavailable(f"no database at {self._location.description}")
        try:
            return self._read(workspace_id, provider, actor_id, since, after, limit)
        except (psycopg.Error, sqlite3.Error, OSError) as error:
            raise self._unavailable(error) from None

    # --- I/O -----------------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stopping.is_set():
            self._wake.wait(self._flush_interval)
            self._wake.clear()
            try:
                self.flush()
                self._prune_when_due()
            except StorageUnavailable as error:
                logger.warning("%s; %d entries kept for the next try", error, len(self._queue))
                self._stopping.wait(min(5.0, self._flush_interval * 8))
            except Exception:  # the writer must outlive anything unforeseen
                logger.exception("audit writer failed; retrying")
                self._disconnect()
                self._stopping.wait(min(5.0, self._flush_interval * 8))

    def _connect(self) -> Any:
        if self._connection is None:
            if self._location.kind == "postgres":
                self._connection = psycopg.connect(
                    self._location.conninfo, autocommit=True, connect_timeout=self._connect_timeout
                )
            else:
                self._connection = sqlite3.connect(
                    str(self._location.sqlite_path),
                    timeout=5.0,
                    isolation_level=None,
                    check_same_thread=False,
                )
        return self._connection

    def _disconnect(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            try:
                connection.close()
            except (psycopg.Error, sqlite3.Error):
                pass

    def _write(self, batch: Sequence[AuditEntry]) -> None:
        connection = self._connect()
        if self._location.kind == "postgres":
            # COPY: one round trip and the server's bulk path, whatever the batch size.
            with connection.cursor() as cursor, cursor.copy(_PG_COPY) as copy:
                for entry in batch:
                    copy.write_row(_values(entry))
            return
        rows = [(_sqlite_time(entry.at), *_values(entry)[1:]) for entry in batch]
        connection.execute("BEGIN IMMEDIATE")
        try:
            connection.executemany(_SQLITE_INSERT, rows)
        except BaseException:
            connection.execute("ROLLBACK")
            raise
        connection.execute("COMMIT")

    def _prune_when_due(self) -> None:
        now = time.monotonic()
        if now < self._next_prune:
            return
        self._next_prune = now + 3600
        cutoff = self._clock() - self._retention
        with self._write_lock:
            try:
                connection = self._connect()
                if self._location.kind == "postgres":
                    connection.execute(_PG_PRUNE, (cutoff,))
                else:
                    connection.execute(_SQLITE_PRUNE, (_sqlite_time(cutoff),))
            except (psycopg.Error, sqlite3.Error, OSError) as error:
                self._next_prune = now + 60  # soon again, not in an hour
                self._disconnect()
                raise self._unavailable(error) from None

    def _read(
        self,
        workspace_id: str,
        provider: str | None,
        actor_id: str | None,
        since: datetime | None,
        after: int,
        limit: int,
    ) -> list[AuditEntry]:
        postgres = self._location.kind == "postgres"
        moment: object = since if postgres or since is None else _sqlite_time(since)
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
        if postgres:
            with psycopg.connect(
                self._location.conninfo, autocommit=True, connect_timeout=self._connect_timeout
            ) as connection:
                rows = connection.execute(_PG_SELECT, params).fetchall()
        else:
            with closing(sqlite3.connect(str(self._location.sqlite_path), timeout=5.0)) as db:
                rows = db.execute(_SQLITE_SELECT, params).fetchall()
        return [_entry(row, postgres) for row in rows]


def _values(entry: AuditEntry) -> tuple[object, ...]:
    return (
        entry.at,
        entry.caller,
        entry.provider,
        entry.workspace_id,
        entry.actor_id,
        entry.outcome,
        entry.source,
    )


def _entry(row: Sequence[Any], postgres: bool) -> AuditEntry:
    at = row[1] if postgres else datetime.fromisoformat(row[1])
    return AuditEntry(
        at.astimezone(UTC), row[2], row[3], row[4], row[5], row[6], row[7], int(row[0])
    )
