"""``oauthvault apikey create`` and ``oauthvault admin credential``: new credentials for the
service, printed once with the entry (their hash) for its configuration file."""

from __future__ import annotations

import json

import click

__all__ = ["admin", "apikey"]


@click.group()
def apikey() -> None:
    """Create API keys for the HTTP service."""


@apikey.command("create", short_help="Print a new API key and its config entry.")
@click.option("--name", required=True, help="A name for logs, e.g. the calling service.")
@click.option("--workspace", "workspaces", multiple=True, help="Limit the key to a workspace.")
def apikey_create(name: str, workspaces: tuple[str, ...]) -> None:
    """Print a new key once, and the [[api_keys]] entry (its hash) for the config file."""
    from oauthvault.service.apikeys import generate_api_key, hash_api_key

    key = generate_api_key()
    click.echo(f"API key (shown once): {key}\n")
    click.echo("Add to the OAUTHVAULT_CONFIG file:\n")
    click.echo("[[api_keys]]")
    click.echo(f"name = {json.dumps(name)}")
    click.echo(f'sha256 = "{hash_api_key(key)}"')
    if workspaces:
        click.echo(f"workspaces = {json.dumps(list(workspaces))}")


@click.group()
def admin() -> None:
    """The admin console's credential."""


@admin.command("credential", short_help="Print a new admin credential and its config entry.")
def admin_credential() -> None:
    """Print a new admin console credential once, and the [admin] table (its hash) for the
    config file; sign in at <public URL>/admin with it."""
    from oauthvault.service.admin_session import (
        generate_admin_credential,
        hash_admin_credential,
    )

    credential = generate_admin_credential()
    click.echo(f"Admin credential (shown once): {credential}\n")
    click.echo("Add to the OAUTHVAULT_CONFIG file:\n")
    click.echo("[admin]")
    click.echo(f'credential_sha256 = "{hash_admin_credential(credential)}"')
