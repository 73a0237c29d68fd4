"""The encryption count of each key, kept in the ``oauth_key_usage`` table.

Every instance counts its seals in memory (:class:`~oauthvault.crypto.usage.EncryptionCounter`,
on the key ring) and :class:`KeyUsageRecorder` adds those counts to the table in batches:
one upsert per key every :data:`FLUSH_INTERVAL` seconds, or sooner once
:data:`~oauthvault.crypto.usage.FLUSH_EVERY` seals wait, and on close; never on the seal
itself. The table is the sum of every instance's counts and survives restarts; a crash
loses at most the counts of the last interval (the limit leaves room for that). A write
that fails keeps its counts for the next one.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Mapping
from contextlib import closing
from datetime import UTC, datetime

import psycopg

from oauthvault.crypto.usage import EncryptionCounter
from oauthvault.errors import StorageUnavailable
from oauthvault.storage.location import DatabaseLocation

__all__ = ["FLUSH_INTERVAL", "KeyUsageRecorder", "read_key_usage", "write_key_usage"]

logger = logging.getLogger("oauthvault.crypto")

#: Seconds between two writes of the counts (when there are any).
FLUSH_INTERVAL = 5.0

# The same text on both engines (SQLite 3.24+ upserts); %s becomes ? for SQLite.
_UPSERT = """
INSERT INTO oauth_key_usage (key_id, encryptions, updated_at) VALUES (%s, %s, %s)
ON CONFLICT (key_id) DO UPDATE SET
    encryptions = oauth_key_usage.encryptions + excluded.encryptions,
    updated_at = excluded.updated_at
"""
_SELECT = "SELECT key_id, encryptions FROM oauth_key_usage"


def _unavailable(location: DatabaseLocation, error: Exception) -> StorageUnavailable:
    if isinstance(error, psycopg.errors.UndefinedTable) or "no such table" in str(error):
        return StorageUnavailable(
            f"key usage at {location.description}: no oauth_key_usage table "
            "(run oauthvault migrate)"
        )
    return StorageUnavailable(f"key usage at {location.description}: {type(error).__name__}")


def write_key_usage(
    location: DatabaseLocation, counts: Mapping[str, int], *, connect_timeout: int = 3
) -> dict[str, int]:
    """Add ``counts`` (encryptions by hex key id) to the table in one transaction; return
    every key's total after it.

    Raises:
        StorageUnavailable: the database could not take them (nothing was added).
    """
    now = datetime.now(UTC)
    rows = [(key_id, count, now) for key_id, count in sorted(counts.items()) if count]
    try:
        if location.kind == "postgres":
            with psycopg.connect(location.conninfo, connect_timeout=connect_timeout) as db:
                with db.cursor() as cursor:
                    cursor.executemany(_UPSERT, rows)
                    cursor.execute(_SELECT)
                    found = cursor.fetchall()
        else:
            path = str(location.sqlite_path)
            with closing(sqlite3.connect(path, timeout=5.0, isolation_level=None)) as db:
                db.execute("BEGIN IMMEDIATE")
                try:
                    stored = [(k, n, t.isoformat(timespec="microseconds")) for k, n, t in rows]
                    db.executemany(_UPSERT.replace("%s", "?"), stored)
                    found = db.execute(_SELECT).fetchall()
                except BaseException:
                    db.execute("ROLLBACK")
                    raise
                db.execute("COMMIT")
    except (psycopg.Error, sqlite3.Error, OSError) as error:
        raise _unavailable(location, error) from None
    return {str(key_id): int(count) for key_id, count in found}


def read_key_usage(location: DatabaseLocation, *, connect_timeout: int = 3) -> dict[str, int]:
    """Every key's encryptions as the table holds them (by hex key id).

    Raises:
        StorageUnavailable: the table cannot be read.
    """
    try:
        if location.kind == "postgres":
            with psycopg.connect(
                location.conninfo, autocommit=True, connect_timeout=connect_timeout
            ) as db:
                found = db.execute(_SELECT).fetchall()
        else:
            path = location.sqlite_path
            if path is not None and not path.exists():  # never create a database by reading
                raise StorageUnavailable(f"no database at {location.description}")
            with closing(sqlite3.connect(str(path), timeout=5.0)) as db:
                found = db.execute(_SELECT).fetchall()
    except (psycopg.Error, sqlite3.Error, OSError) as error:
        raise _unavailable(location, error) from None
    return {str(key_id): int(count) for key_id, count in found}


class KeyUsageRecorder:
    """Writes a key ring's encryption counts to the database in the background (see the
    module). :meth:`start` it; :meth:`close` stops it after a last write."""

    def __init__(
        self,
        location: DatabaseLocation,
        counter: EncryptionCounter,
        *,
        flush_interval: float = FLUSH_INTERVAL,
        connect_timeout: float = 3.0,
    ) -> None:
        self._location = location
        self._counter = counter
        self._flush_interval = flush_interval
        self._connect_timeout = max(1, round(connect_timeout))
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._write_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._warned = False

    def __repr__(self) -> str:
        return f"KeyUsageRecorder(database={self._location.description!r})"

    def totals(self) -> dict[str, int]:
        """Encryptions by hex key id: the table's as last read or written, plus this
        process's not written yet (no I/O)."""
        return self._counter.totals()

    def start(self) -> None:
        if self._thread is None:
            self._stopping.clear()
            self._counter.when_due(self._wake.set)
            self._thread = threading.Thread(
                target=self._run, name="oauthvault-key-usage", daemon=True
            )
            self._thread.start()

    def flush(self) -> None:
        """Add the counts gathered so far to the table now.

        Raises:
            StorageUnavailable: the database could not take them (they are kept).
        """
        with self._write_lock:
            counts = self._counter.take()
            if not counts:
                return
            try:
                totals = write_key_usage(
                    self._location, counts, connect_timeout=self._connect_timeout
                )
            except StorageUnavailable:
                self._counter.give_back()
                raise
            self._counter.settle(totals)

    def read(self) -> dict[str, int]:
        """The table's totals, read now, plus this process's counts not written yet.

        Raises:
            StorageUnavailable: the table cannot be read.
        """
        self._counter.learn(read_key_usage(self._location, connect_timeout=self._connect_timeout))
        return self._counter.totals()

    def close(self) -> None:
        """Stop the writer and write the counts still unwritten."""
        self._stopping.set()
        self._wake.set()
        self._counter.when_due(None)
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        self._flush_logged()

    def _run(self) -> None:
        try:
            self.read()  # the totals of other instances and earlier runs, for totals()
        except StorageUnavailable as error:
            logger.debug("%s", error)
        while not self._stopping.is_set():
            self._wake.wait(self._flush_interval)
            self._wake.clear()
            if self._stopping.is_set():
                return
            self._flush_logged()

    def _flush_logged(self) -> None:
        try:
            self.flush()
        except StorageUnavailable as error:
            # Once per recorder: the counts are kept and the next write tries again.
            if not self._warned:
                self._warned = True
                logger.warning("%s: encryption counts kept in memory for now", error)
