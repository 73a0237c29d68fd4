"""``oauthvault audit``: the audit trail of one workspace's token reads."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import click

from oauthvault.cli.root import load_settings, plain_errors

__all__ = ["audit"]


@click.command(short_help="Show who was handed which token (the audit trail).")
@click.option("--workspace", "workspace_id", required=True, help="The workspace to show.")
@click.option("--provider")
@click.option("--actor", "actor_id")
@click.option("--since", type=click.DateTime(["%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%d"]))
@click.option("--after", default=0, show_default=True, type=click.IntRange(0))
@click.option("--limit", default=100, show_default=True, type=click.IntRange(1, 1000))
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@click.pass_context
@plain_errors
def audit(
    context: click.Context,
    workspace_id: str,
    provider: str | None,
    actor_id: str | None,
    since: datetime | None,
    after: int,
    limit: int,
    as_json: bool,
) -> None:
    """Show the audit trail of token reads of one workspace, oldest first: when, who (the
    API key's name), which connection, the outcome and the client's address. Never a token.
    --since takes a date (UTC) or a time with its offset; --after the last id shown."""
    from oauthvault.audit import AuditTrail
    from oauthvault.models import validate_filter

    validate_filter(provider, workspace_id, actor_id)
    if since is not None and since.tzinfo is None:
        since = since.replace(tzinfo=UTC)
    settings = load_settings(context)
    entries = AuditTrail(settings.database_location).read(
        workspace_id, provider=provider, actor_id=actor_id, since=since, after=after, limit=limit
    )
    if as_json:
        for entry in entries:
            click.echo(json.dumps(entry.as_dict()))
        return
    if not entries:
        click.echo("no entries")
        return
    click.echo("id\tat\tcaller\tprovider\tactor_id\toutcome\tsource")
    for entry in entries:
        click.echo(
            f"{entry.id}\t{entry.at.isoformat()}\t{entry.caller}\t{entry.provider}\t"
            f"{entry.actor_id}\t{entry.outcome}\t{entry.source or '-'}"
        )
