"""``oauthvault migrate``: create or upgrade the database schema."""

from __future__ import annotations

import re

import click

from oauthvault.cli.root import load_settings, plain_errors
from oauthvault.errors import VaultError

__all__ = ["migrate"]


@click.command()
@click.pass_context
@plain_errors
def migrate(context: click.Context) -> None:
    """Create or upgrade the database schema (Alembic)."""
    from oauthvault.storage.migrations import HEAD_REVISION, upgrade

    location = load_settings(context).database_location
    try:
        upgrade(location)
    except Exception as error:  # Alembic/SQLAlchemy raise many types
        raise VaultError(
            f"migration of {location.description} failed: {_failure_reason(error)}"
        ) from None
    click.echo(f"{location.description}: schema at revision {HEAD_REVISION}")


def _failure_reason(error: Exception) -> str:
    """The error's type and first line, from the driver's own error when SQLAlchemy wraps
    one (its message would add the statement); a URL's credentials are blanked."""
    original = getattr(error, "orig", None)
    if isinstance(original, Exception):
        error = original
    text = str(error).strip()
    first = re.sub(r"://[^@/\s]*@", "://***@", text.splitlines()[0]) if text else ""
    return f"{type(error).__name__}: {first}" if first else type(error).__name__
