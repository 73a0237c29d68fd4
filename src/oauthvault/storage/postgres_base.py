"""What both PostgreSQL flavours share: connection options, settings and how a psycopg
error becomes a ``StorageUnavailable`` (no I/O here)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from psycopg_pool import PoolClosed, PoolTimeout, TooManyRequests

from oauthvault.errors import StorageUnavailable
from oauthvault.storage.location import DatabaseLocation

__all__ = [
    "CONNECTION_OPTIONS",
    "PENDING_GRACE",
    "POOL_ERRORS",
    "RESERVED_FOR",
    "Clock",
    "PoolSettings",
    "unavailable",
    "utc_now",
]

Clock = Callable[[], datetime]

#: Expired one-time records are purged this long after they expire.
PENDING_GRACE = timedelta(hours=1)

#: Every connection is in autocommit mode, and psycopg's heuristics never prepare on the
#: server (the statements that should be prepared say so).
CONNECTION_OPTIONS = {"autocommit": True, "prepare_threshold": 0}

#: Seconds a store keeps its reserved connection before handing it back to the pool and
#: taking one again, so the pool's own upkeep (lifetime, health) reaches it too.
RESERVED_FOR = 60.0

#: What a pool raises instead of handing out a connection.
POOL_ERRORS = (PoolTimeout, PoolClosed, TooManyRequests)


def utc_now() -> datetime:
    return datetime.now(UTC)


def unavailable(description: str, error: Exception) -> StorageUnavailable:
    """The error a caller sees for ``error``: the server and the error's first line."""
    # psycopg messages name hosts and SQL states, never parameters or passwords.
    detail = str(error).strip().splitlines()[0] if str(error).strip() else ""
    return StorageUnavailable(
        f"PostgreSQL at {description}: {type(error).__name__}" + (f": {detail}" if detail else "")
    )


class PoolSettings:
    """Where the server is and how its connections and pools are made."""

    def __init__(
        self,
        location: DatabaseLocation,
        *,
        connect_timeout: float,
        pool_timeout: float,
        min_size: int,
        max_size: int,
    ) -> None:
        if location.kind != "postgres":
            raise ValueError("not a PostgreSQL location")
        self.location = location
        self.connect_timeout = connect_timeout
        self.pool_timeout = pool_timeout
        self.min_size = min_size
        self.max_size = max_size

    @property
    def conninfo(self) -> str:
        return self.location.conninfo

    @property
    def description(self) -> str:
        """Where the data lives, with no password."""
        return self.location.description

    @property
    def connection_options(self) -> dict[str, Any]:
        """Every connection's options: autocommit, no server-side prepare by psycopg's
        heuristics, the connect timeout (unless the URL sets its own)."""
        options: dict[str, Any] = dict(CONNECTION_OPTIONS)
        if "connect_timeout" not in self.location.conninfo:
            options["connect_timeout"] = max(1, round(self.connect_timeout))
        return options

    def pool_arguments(self, name: str) -> dict[str, Any]:
        """What a pool of either flavour is made with."""
        return {
            "min_size": self.min_size,
            "max_size": self.max_size,
            "timeout": self.pool_timeout,
            "kwargs": self.connection_options,
            "open": False,
            "name": name,
        }
