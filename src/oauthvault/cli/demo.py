"""``oauthvault demo``: store, read and delete a sample connection."""

from __future__ import annotations

import click

from oauthvault.cli.root import open_vault, plain_errors
from oauthvault.errors import VaultError

__all__ = ["demo"]


@click.command(short_help="Store, read and delete a sample connection.")
@click.pass_context
@plain_errors
def demo(context: click.Context) -> None:
    """Store, read and delete a sample connection, showing where everything goes."""
    vault = open_vault(context)
    click.echo(f"database: {vault.database} ({vault.backend_mode})")
    click.echo(f"key ring: {len(vault.keyring)} key(s), newest {vault.keyring.primary.key_id_hex}")
    args = ("google", "ws_abc123", "user_456")
    sample_access = "ya29.demo-access-token"
    vault.store_tokens(*args, sample_access, "1//demo-refresh-token", 3600, "gmail.send")
    click.echo("stored tokens for google / ws_abc123 / user_456 (encrypted at rest)")
    found = vault.get_tokens(*args)
    if found is None:  # pragma: no cover - would be a bug
        raise VaultError("the demo connection vanished")
    click.echo(f"read back: {found!r}")
    click.echo(f"access token round trip ok: {found['access_token'] == sample_access}")
    click.echo(f"deleted: {vault.delete_tokens(*args)}")
    click.echo(f"after delete: {vault.get_tokens(*args)}")
