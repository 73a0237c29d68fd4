"""The admin console's ended sessions (the ``oauth_admin_ended`` table): a session id is
written when its operator signs out and read on every console request, so a copied cookie
stops working on every instance that shares the database. A row is kept until the session
would have expired anyway; each sign-out removes the rows past that point.

Short connections: the console is used by a few operators, and every call is one statement
(or one small transaction) on an indexed key. Driver errors become ``StorageUnavailable``.
"""

from __future__ import annotations

import sqlite3
from contextlib import closing
from typing import Protocol

import psycopg

from oauthvault.errors import StorageUnavailable
from oauthvault.storage.location import DatabaseLocation

__all__ = ["EndedSessions", "ended_sessions_at"]

_PG_END = """
WITH purged AS (DELETE FROM oauth_admin_ended WHERE expires_at < %s)
INSERT INTO oauth_admin_ended (session_id, expires_at) VALUES (%s, %s)
ON CONFLICT (session_id) DO NOTHING
"""
_PG_ENDED = "SELECT 1 FROM oauth_admin_ended WHERE session_id = %s"
_SQLITE_PURGE = "DELETE FROM oauth_admin_ended WHERE expires_at < ?"
_SQLITE_END = "INSERT OR IGNORE INTO oauth_admin_ended (session_id, expires_at) VALUES (?, ?)"
_SQLITE_ENDED = "SELECT 1 FROM oauth_admin_ended WHERE session_id = ?"


class EndedSessions(Protocol):
    """Sessions signed out of before their expiry."""

    def end(self, session_id: str, expires_at: float, now: float) -> None:
        """Record ``session_id`` as ended until ``expires_at`` (epoch seconds); forget
        those whose expiry is before ``now``.

        Raises:
            StorageUnavailable: the database could not take it.
        """

    def ended(self, session_id: str) -> bool:
        """True when ``session_id`` was signed out of.

        Raises:
            StorageUnavailable: the database cannot be read.
        """


def ended_sessions_at(location: DatabaseLocation, connect_timeout: float) -> EndedSessions:
    """The ended sessions of the database at ``location``."""
    if location.kind == "postgres":
        return _PostgresEndedSessions(location, max(1, round(connect_timeout)))
    return _SQLiteEndedSessions(location)


def _unavailable(description: str, error: Exception) -> StorageUnavailable:
    if isinstance(error, psycopg.errors.UndefinedTable) or "no such table" in str(error):
        return StorageUnavailable(
            f"admin sessions at {description}: no oauth_admin_ended table (run oauthvault migrate)"
        )
    return StorageUnavailable(f"admin sessions at {description}: {type(error).__name__}")


class _PostgresEndedSessions:
    def __init__(self, location: DatabaseLocation, connect_timeout: int) -> None:
        self._location = location
        self._connect_timeout = connect_timeout

    def end(self, session_id: str, expires_at: float, now: float) -> None:
        self._run(_PG_END, (now, session_id, expires_at))

    def ended(self, session_id: str) -> bool:
        return self._run(_PG_ENDED, (session_id,))

    def _run(self, statement: str, params: tuple[object, ...]) -> bool:
        try:
            with psycopg.connect(
                self._location.conninfo, autocommit=True, connect_timeout=self._connect_timeout
            ) as connection:
                cursor = connection.execute(statement, params)
                return cursor.description is not None and cursor.fetchone() is not None
        except (psycopg.Error, OSError) as error:
            raise _unavailable(self._location.description, error) from None


class _SQLiteEndedSessions:
    def __init__(self, location: DatabaseLocation) -> None:
        self._location = location

    def end(self, session_id: str, expires_at: float, now: float) -> None:
        try:
            with closing(self._connect()) as connection, connection:
                connection.execute(_SQLITE_PURGE, (now,))
                connection.execute(_SQLITE_END, (session_id, expires_at))
        except sqlite3.Error as error:
            raise _unavailable(self._location.description, error) from None

    def ended(self, session_id: str) -> bool:
        try:
            with closing(self._connect()) as connection:
                return connection.execute(_SQLITE_ENDED, (session_id,)).fetchone() is not None
        except sqlite3.Error as error:
            raise _unavailable(self._location.description, error) from None

    def _connect(self) -> sqlite3.Connection:
        return sqlite3.connect(str(self._location.sqlite_path), timeout=5)
