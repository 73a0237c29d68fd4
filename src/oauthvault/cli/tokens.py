"""``oauthvault tokens``: inspect, create and delete stored connections."""

from __future__ import annotations

import sys

import click

from oauthvault.cli.root import exit_not_found, open_vault, param_options, plain_errors

__all__ = ["tokens"]

MASK = "[secure]"


@click.group()
def tokens() -> None:
    """Inspect and delete stored connections."""


@tokens.command("list")
@click.option("--provider")
@click.option("--workspace", "workspace_id")
@click.option("--limit", default=100, show_default=True, type=click.IntRange(1, 100_000))
@click.pass_context
@plain_errors
def tokens_list(
    context: click.Context, provider: str | None, workspace_id: str | None, limit: int
) -> None:
    """List connections (never their tokens)."""
    rows = open_vault(context).list_connections(provider, workspace_id, limit)
    if not rows:
        click.echo("no connections")
        return
    click.echo(
        "provider\tworkspace_id\tactor_id\tstatus\texpires_at\trefresh\tkey_id\tscope"
        "\tparams\tlast_error"
    )
    for row in rows:
        expires = row.expires_at.isoformat() if row.expires_at else "-"
        params = ",".join(f"{name}={value}" for name, value in sorted(row.params.items()))
        click.echo(
            f"{row.provider}\t{row.workspace_id}\t{row.actor_id}\t{row.status}\t{expires}\t"
            f"{'yes' if row.has_refresh_token else 'no'}\t{row.key_id}\t{row.scope or ''}\t"
            f"{params}\t{row.last_error or ''}"
        )


@tokens.command("get", short_help="Show one connection (tokens masked).")
@click.argument("provider")
@click.argument("workspace_id")
@click.argument("actor_id")
@click.option("--show-secrets", is_flag=True, help="Print the tokens themselves.")
@click.pass_context
@plain_errors
def tokens_get(
    context: click.Context, provider: str, workspace_id: str, actor_id: str, show_secrets: bool
) -> None:
    """Show one connection; tokens are masked unless --show-secrets is given."""
    vault = open_vault(context)
    found = vault.get_tokens(provider, workspace_id, actor_id)
    if found is None:
        exit_not_found(provider, workspace_id, actor_id)
    listed = vault.list_connections(provider, workspace_id, actor_id=actor_id, limit=1)
    refresh = found.refresh_token
    click.echo(f"access_token: {found.access_token if show_secrets else MASK}")
    if refresh is None:
        click.echo("refresh_token: -")
    else:
        click.echo(f"refresh_token: {refresh if show_secrets else MASK}")
    click.echo(f"expires_at: {found.expires_at.isoformat() if found.expires_at else '-'}")
    click.echo(f"scope: {found.scope if found.scope is not None else '-'}")
    for name, value in sorted(found.params.items()):
        click.echo(f"params.{name}: {value}")
    if listed:
        click.echo(f"status: {listed[0].status}")
        click.echo(f"last_error: {listed[0].last_error or '-'}")


@tokens.command("client-credentials", short_help="Create a client-credentials connection.")
@click.argument("provider")
@click.argument("workspace_id")
@click.argument("actor_id")
@click.option("--client-id", help="A customer's own client id (default: the app's).")
@click.option(
    "--client-secret-stdin",
    is_flag=True,
    help="Read the customer's client secret from standard input (never from the command line).",
)
@click.option("--scope", help="Scopes to ask for, as the provider writes them.")
@click.option(
    "--param",
    "params",
    multiple=True,
    metavar="NAME=VALUE",
    help="A connection parameter the provider needs (e.g. domain=acme.okta.com); repeatable.",
)
@click.pass_context
@plain_errors
def tokens_client_credentials(
    context: click.Context,
    provider: str,
    workspace_id: str,
    actor_id: str,
    client_id: str | None,
    client_secret_stdin: bool,
    scope: str | None,
    params: tuple[str, ...],
) -> None:
    """Create a client-credentials connection and fetch its first token."""
    given = param_options(params)
    secret = sys.stdin.readline().rstrip("\r\n") if client_secret_stdin else None
    if (client_id is None) != (secret is None):
        click.echo("error: --client-id goes with --client-secret-stdin", err=True)
        sys.exit(2)
    tokens = open_vault(context).store_client_credentials(
        provider,
        workspace_id,
        actor_id,
        client_id=client_id,
        client_secret=secret,
        scope=scope,
        params=given,
    )
    expires = tokens.expires_at.isoformat() if tokens.expires_at else "-"
    click.echo(f"connected: token valid until {expires}")


@tokens.command("delete", short_help="Delete one connection (--revoke: at the provider too).")
@click.argument("provider")
@click.argument("workspace_id")
@click.argument("actor_id")
@click.option("--revoke", is_flag=True, help="Ask the provider to revoke the grant first.")
@click.pass_context
@plain_errors
def tokens_delete(
    context: click.Context, provider: str, workspace_id: str, actor_id: str, revoke: bool
) -> None:
    """Delete one connection from the database and the cache (with --revoke, revoke it at
    the provider first; it is deleted here whatever the provider answers)."""
    vault = open_vault(context)
    if not revoke:
        if not vault.delete_tokens(provider, workspace_id, actor_id):
            exit_not_found(provider, workspace_id, actor_id)
        click.echo("deleted")
        return
    outcome = vault.delete_tokens(provider, workspace_id, actor_id, revoke=True)
    if not outcome.deleted:
        exit_not_found(provider, workspace_id, actor_id)
    said = {
        True: "revoked at the provider",
        False: "the provider did not confirm the revocation",
        None: "the provider has no revocation endpoint",
    }[outcome.revoked]
    click.echo(f"deleted ({said})")
