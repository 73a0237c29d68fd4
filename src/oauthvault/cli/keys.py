"""``oauthvault keygen`` and ``oauthvault rotate-key``: the encryption keys."""

from __future__ import annotations

import sys

import click

from oauthvault.cli.root import open_vault, plain_errors
from oauthvault.crypto.keyring import generate_key

__all__ = ["keygen", "rotate_key"]


@click.command()
def keygen() -> None:
    """Print a new encryption key for OAUTH_ENCRYPTION_KEY."""
    click.echo(generate_key())


@click.command("rotate-key", short_help="Re-encrypt every row with the newest key.")
@click.option("--batch-size", default=500, show_default=True, type=click.IntRange(1, 100_000))
@click.pass_context
@plain_errors
def rotate_key(context: click.Context, batch_size: int) -> None:
    """Re-encrypt every row with the newest key of OAUTH_ENCRYPTION_KEY.

    Safe to run while the service runs, and to run again if interrupted.
    """
    vault = open_vault(context)
    click.echo(f"re-sealing rows with key {vault.keyring.primary.key_id_hex}")
    report = vault.rotate_key(
        batch_size=batch_size, on_batch=lambda done: click.echo(f"  {done} rows re-sealed")
    )
    click.echo(f"done: {report.rotated} rows re-sealed")
    click.echo(f"rows by key id: {report.remaining_by_key_id}")
    if report.undecryptable:
        click.echo(
            f"error: {len(report.undecryptable)} rows cannot be decrypted with any key in the"
            " ring and were left as they are, e.g. " + str(report.undecryptable[0]),
            err=True,
        )
        sys.exit(1)
