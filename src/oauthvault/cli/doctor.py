"""``oauthvault doctor``: check the configuration, database, key ring, providers and Redis."""

from __future__ import annotations

import sys

import click

from oauthvault.cli.root import load_settings

__all__ = ["doctor"]


@click.command(short_help="Check configuration, database, keys and Redis.")
@click.pass_context
def doctor(context: click.Context) -> None:
    """Check configuration, database, key ring, providers and Redis; say plainly what is
    wrong. Warnings (a provider that cannot revoke) do not fail the run."""
    from oauthvault.doctor import run_checks

    problems = 0
    for check in run_checks(lambda: load_settings(context)):
        mark = "FAIL" if not check.ok else "warn" if check.warning else "ok  "
        click.echo(f"{mark} {check.name}: {check.detail}")
        problems += not check.ok
    if problems:
        click.echo(f"{problems} problem(s) found", err=True)
        sys.exit(1)
