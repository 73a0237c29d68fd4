"""The audit trail of token reads: who was handed which connection's token, when, with what
outcome and from where; and of calls through the API proxy (outcome ``proxied``: method,
host, path without the query, status, duration, bytes). Never a token.

:meth:`AuditTrail.record` only queues an entry (no I/O, safe from any thread or event
loop); one background thread writes the queue in batches on its own database connection
(the ``oauth_audit`` table: append-only, old rows removed after the retention) and keeps
entries it could not write for the next attempt. :meth:`AuditTrail.close` writes what is
still queued, so a clean stop (``close()``, SIGTERM to the service or the worker) loses
nothing; a crash (SIGKILL, power loss) loses what was queued since the last write: at most
``flush_interval`` seconds' worth (0.25 s). A queue that outgrows ``max_queue`` (the
database away for long) drops new entries and counts them (``dropped``).

The table and its SQL are the storage layer's (:mod:`oauthvault.storage.audit_postgres`,
:mod:`oauthvault.storage.audit_sqlite`); this module queues, batches and retries.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta

from oauthvault.errors import InvalidInput, StorageUnavailable, VaultError
from oauthvault.failures import FailureKind, classify
from oauthvault.storage.audit_postgres import PostgresAuditStore
from oauthvault.storage.audit_sqlite import SQLiteAuditStore
from oauthvault.storage.audit_store import (
    OUTCOMES,
    AuditEntry,
    AuditStore,
    EntryRefused,
    Outcome,
    ProxiedCall,
)
from oauthvault.storage.location import DatabaseLocation

__all__ = ["OUTCOMES", "AuditEntry", "AuditTrail", "Outcome", "ProxiedCall", "outcome_of"]

logger = logging.getLogger("oauthvault.audit")

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


def _clean(text: object, limit: int) -> str | None:
    if text is None:
        return None
    value = (text if isinstance(text, str) else type(text).__name__)[:limit]
    if value.isascii() and value.isprintable():  # an API key name, an address: as is
        return value
    value = "".join("?" if not char.isprintable() else char for char in value)
    return value.encode("utf-8", "replace").decode("utf-8")


def _store_at(location: DatabaseLocation, connect_timeout: float) -> AuditStore:
    if location.kind == "postgres":
        return PostgresAuditStore(location, connect_timeout=max(1, round(connect_timeout)))
    return SQLiteAuditStore(location)


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
        self._store = _store_at(location, connect_timeout)
        self._retention = timedelta(days=retention_days)
        self._flush_interval = flush_interval
        self._batch_size = batch_size
        self._max_queue = max_queue
        self._clock = clock
        self._queue: deque[AuditEntry] = deque()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._write_lock = threading.Lock()
        self._next_prune = 0.0
        self._thread: threading.Thread | None = None
        self.dropped = 0
        self.written = 0

    @property
    def writer_alive(self) -> bool:
        """Whether the background writer thread is running (after ``start``)."""
        return self._thread is not None and self._thread.is_alive()

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
        self._queue_entry(
            AuditEntry(self._clock(), caller, provider, workspace_id, actor_id, outcome, source)
        )

    def record_call(
        self,
        caller: str,
        provider: str,
        workspace_id: str,
        actor_id: str,
        call: ProxiedCall,
        source: str | None = None,
    ) -> None:
        """Queue one proxied call (outcome ``proxied``; no I/O). Its text is cleaned like
        :meth:`record`'s (method cut to 16 characters, host to 255, path to 2,048); a path
        is kept up to its ``?`` only, whatever the caller passed."""
        caller, source = _clean(caller, 100) or "-", _clean(source, 255)
        path = call.path.split("?", 1)[0].split("#", 1)[0]
        cleaned = ProxiedCall(
            _clean(call.method, 16) or "-",
            _clean(call.host, 255),
            _clean(path, 2048) or "",
            call.status,
            _clean(call.error, 100),
            max(0, call.duration_ms),
            max(0, call.response_bytes),
            max(0, call.request_bytes),
        )
        self._queue_entry(
            AuditEntry(
                self._clock(),
                caller,
                provider,
                workspace_id,
                actor_id,
                "proxied",
                source,
                call=cleaned,
            )
        )

    def _queue_entry(self, entry: AuditEntry) -> None:
        if len(self._queue) >= self._max_queue:
            if self.dropped == 0:
                logger.error("audit queue full (%d): dropping entries", self._max_queue)
            self.dropped += 1
            return
        self._queue.append(entry)
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
                    self._store.write(batch)
                except EntryRefused:
                    self._write_one_by_one(batch)
                    continue
                except StorageUnavailable:
                    self._queue.extendleft(reversed(batch))  # kept, in order, for the next try
                    raise
                self.written += len(batch)

    def _write_one_by_one(self, batch: Sequence[AuditEntry]) -> None:
        """A batch the database refused for its content: keep every entry it takes, drop
        (and count) the others, so that one bad entry never blocks the trail."""
        for index, entry in enumerate(batch):
            try:
                self._store.write([entry])
            except EntryRefused as refused:
                self.dropped += 1
                logger.error("audit entry refused by the database (%s): dropped", refused.reason)
            except StorageUnavailable:
                self._queue.extendleft(reversed(batch[index:]))
                raise
            else:
                self.written += 1

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
            self._store.close()

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
        return self._store.read(workspace_id, provider, actor_id, since, after, limit)

    def latest_calls(
        self, workspace_id: str, provider: str, actor_id: str, *, limit: int = 50
    ) -> list[AuditEntry]:
        """One connection's latest proxied calls, newest first, at most ``limit`` (1 to
        1000).

        Raises:
            InvalidInput: ``limit`` out of range.
            StorageUnavailable: the database cannot be read.
        """
        if not 1 <= limit <= MAX_READ:
            raise InvalidInput("limit", f"must be from 1 to {MAX_READ}")
        return self._store.latest_calls(workspace_id, provider, actor_id, limit)

    # --- the writer thread ----------------------------------------------------------------

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
                self._store.close()
                self._stopping.wait(min(5.0, self._flush_interval * 8))

    def _prune_when_due(self) -> None:
        if time.monotonic() >= self._next_prune:
            self.prune()

    def prune(self) -> None:
        """Delete the entries older than the retention now (the writer does it hourly).

        Raises:
            StorageUnavailable: the database cannot be reached (tried again in a minute).
        """
        now = time.monotonic()
        self._next_prune = now + 3600
        cutoff = self._clock() - self._retention
        with self._write_lock:
            try:
                self._store.prune(cutoff)
            except StorageUnavailable:
                self._next_prune = now + 60  # soon again, not in an hour
                raise
