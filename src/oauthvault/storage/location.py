"""Where the database is: ``DATABASE_URL`` parsed into PostgreSQL or SQLite.

``postgresql://…`` (or ``postgres://…``) selects PostgreSQL; ``sqlite:///relative.db`` or
``sqlite:////absolute/path.db`` selects an embedded SQLite file, the default.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from oauthvault.errors import ConfigError

__all__ = ["DEFAULT_SQLITE_PATH", "DatabaseLocation", "parse_database_url"]

DEFAULT_SQLITE_PATH = Path("oauthvault.db")
_POSTGRES_SCHEMES = ("postgresql://", "postgres://")
_SQLITE_PREFIX = "sqlite:///"


@dataclass(frozen=True, slots=True)
class DatabaseLocation:
    """A parsed database address. The PostgreSQL conninfo (it may hold a password) is hidden."""

    kind: Literal["postgres", "sqlite"]
    conninfo: str = field(default="", repr=False)
    sqlite_path: Path | None = None

    @property
    def description(self) -> str:
        """The address without user or password: safe for logs and error messages."""
        if self.kind == "sqlite":
            return f"sqlite:///{self.sqlite_path}"
        parts = urlsplit(self.conninfo)
        return f"postgresql://{parts.hostname or 'localhost'}:{parts.port or 5432}{parts.path}"

    @property
    def sqlalchemy_url(self) -> str:
        """The address in SQLAlchemy's form, for Alembic."""
        if self.kind == "sqlite":
            return f"sqlite:///{self.sqlite_path}"
        return "postgresql+psycopg://" + self.conninfo.split("://", 1)[1]


def parse_database_url(url: str | None, setting: str = "DATABASE_URL") -> DatabaseLocation:
    """Parse a database URL; ``None`` or empty selects the embedded SQLite default.

    Raises:
        ConfigError: the URL is of no supported kind (its value is not repeated).
    """
    if not url:
        return DatabaseLocation(kind="sqlite", sqlite_path=DEFAULT_SQLITE_PATH)
    if url.startswith(_POSTGRES_SCHEMES):
        _check_postgres_url(url, setting)
        return DatabaseLocation(kind="postgres", conninfo=url)
    if url.startswith(_SQLITE_PREFIX) and len(url) > len(_SQLITE_PREFIX):
        return DatabaseLocation(kind="sqlite", sqlite_path=Path(url[len(_SQLITE_PREFIX) :]))
    raise ConfigError(
        setting, "must start with postgresql:// or sqlite:/// (e.g. sqlite:///oauthvault.db)"
    )


def _check_postgres_url(url: str, setting: str) -> None:
    """Refuse a URL that libpq and Python would read differently: an ``@``, ``/``, ``?`` or
    ``#`` left unencoded in the user or password would send part of the password to the
    server as a host name (and into its error messages).

    Raises:
        ConfigError: naming ``setting``, never the value.
    """
    netloc = url.split("://", 1)[1].split("/", 1)[0].split("?", 1)[0].split("#", 1)[0]
    try:
        parts = urlsplit(url)
        if "," not in netloc:  # libpq's several hosts (h1:5432,h2:5432) have no one port
            parts.port  # noqa: B018 - raises ValueError for a malformed port
    except ValueError:
        parts = None
    if parts is None or netloc.count("@") > 1 or (parts.netloc != netloc):
        raise ConfigError(
            setting,
            "is not a usable PostgreSQL URL: percent-encode @ / ? # : in the user and "
            "password (e.g. %40 for @)",
        )
