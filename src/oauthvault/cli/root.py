"""The ``oauthvault`` command group, and what its commands share: the settings (built
lazily: ``keygen`` works with no configuration at all), the vault, and turning library
errors into one plain line and exit status 2."""

from __future__ import annotations

import functools
import logging
import sys
from collections.abc import Callable
from typing import Any, NoReturn, TypeVar

import click

from oauthvault.config import Settings
from oauthvault.errors import VaultError
from oauthvault.vault import OAuthTokenCache

__all__ = [
    "exit_not_found",
    "fail",
    "load_settings",
    "main",
    "open_vault",
    "param_options",
    "plain_errors",
]

F = TypeVar("F", bound=Callable[..., Any])


def plain_errors(command: F) -> F:
    """Turn library errors into one line on stderr and exit status 2: no stack traces."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except VaultError as error:
            click.echo(f"error: {error}", err=True)
            sys.exit(2)

    return wrapper  # type: ignore[return-value]


def exit_not_found(provider: str, workspace_id: str, actor_id: str) -> NoReturn:
    """Say that the connection is not stored, and exit with status 2."""
    click.echo(f"error: no connection {provider}/{workspace_id}/{actor_id}", err=True)
    sys.exit(2)


def fail(message: str) -> NoReturn:
    """Print one ``error:`` line on stderr and exit with status 2."""
    click.echo(f"error: {message}", err=True)
    sys.exit(2)


def param_options(items: tuple[str, ...]) -> dict[str, str]:
    """The ``--param NAME=VALUE`` options as a mapping (a malformed one: exit 2)."""
    given: dict[str, str] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name:
            click.echo(f"error: --param wants NAME=VALUE, got {name or item!r}", err=True)
            sys.exit(2)
        given[name] = value
    return given


def load_settings(context: click.Context) -> Settings:
    """The settings: the environment, with the group's ``--database-url`` and
    ``--redis-url`` over it.

    Raises:
        ConfigError: a setting is missing or unusable.
    """
    settings: Settings = context.ensure_object(dict)["settings"]()
    return settings


def open_vault(context: click.Context, *, audit_caller: str | None = None) -> OAuthTokenCache:
    """A vault on the settings, closed when the command ends; with ``audit_caller``, its
    reads are recorded in the audit trail as by that caller (unless ``OAUTHVAULT_AUDIT``
    is off)."""
    settings = load_settings(context)
    audited = audit_caller if settings.audit else None
    vault: OAuthTokenCache = context.with_resource(
        OAuthTokenCache(settings=settings, audit_caller=audited)
    )
    return vault


@click.group()
@click.option("--database-url", help="Overrides DATABASE_URL.")
@click.option("--redis-url", help="Overrides REDIS_URL.")
@click.option("-v", "--verbose", is_flag=True, help="Log what the library does.")
@click.version_option(package_name="oauthvault")
@click.pass_context
def main(
    context: click.Context, database_url: str | None, redis_url: str | None, verbose: bool
) -> None:
    """oauthvault: encrypted OAuth tokens for multi-tenant backends."""
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING, format="%(levelname)s %(message)s"
    )
    if not verbose:
        # psycopg_pool warns on every failed background connection attempt; the vault
        # reports an unreachable database itself, in one line naming the reason.
        logging.getLogger("psycopg.pool").setLevel(logging.ERROR)
    # Settings are built lazily: `keygen` must work with no configuration at all.
    context.ensure_object(dict)["settings"] = functools.partial(
        Settings.load, database_url=database_url, redis_url=redis_url
    )
