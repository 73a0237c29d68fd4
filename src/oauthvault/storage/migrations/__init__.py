"""Alembic migrations for both databases, run with ``oauthvault migrate`` or :func:`upgrade`."""

from __future__ import annotations

from alembic import command
from alembic.config import Config

from oauthvault.storage.location import DatabaseLocation

__all__ = ["HEAD_REVISION", "upgrade"]

# The revision this code expects; a test checks that it is Alembic's head.
HEAD_REVISION = "0011"


def alembic_config(location: DatabaseLocation) -> Config:
    """An Alembic configuration for ``location``, with no ini file needed."""
    config = Config()
    config.set_main_option("script_location", "oauthvault.storage:migrations")
    # Passed as an attribute, not an ini option: ini values treat "%" specially.
    config.attributes["sqlalchemy_url"] = location.sqlalchemy_url
    return config


def upgrade(location: DatabaseLocation, revision: str = "head") -> None:
    """Bring the schema at ``location`` up to ``revision``."""
    command.upgrade(alembic_config(location), revision)
