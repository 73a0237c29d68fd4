"""``oauthvault providers``: what the built-in provider catalog knows."""

from __future__ import annotations

import json
import sys

import click

__all__ = ["providers"]


@click.group()
def providers() -> None:
    """What the built-in provider catalog knows."""


@providers.command("list", short_help="One line per catalog provider.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
def providers_list(as_json: bool) -> None:
    """One line per catalog provider, OAuth and credential catalogs together: name, display
    name, auth style, refresh, revocation, the connection parameters it needs and its auth
    kind (oauth2, or the credential's: api_key, basic, fields, ...)."""
    from oauthvault.providers import load_catalog
    from oauthvault.providers.credentials import load_credential_catalog
    from oauthvault.providers.describe import credential_summary, summary

    rows = [{**summary(spec), "auth": "oauth2"} for spec in load_catalog().values()]
    rows += [credential_summary(spec) for spec in load_credential_catalog().values()]
    for row in sorted(rows, key=lambda each: str(each["name"])):
        if as_json:
            click.echo(json.dumps(row, sort_keys=True))
            continue
        needs = ",".join(
            p["name"] + ("" if p["required"] else "?")
            for p in row["connection_params"]
            if p["source"] == "link"
        )
        click.echo(
            f"{row['name']}\t{row['display_name']}\t{row['auth_style']}\t"
            f"refresh={'yes' if row['refreshes'] else 'no'}\t"
            f"revoke={'yes' if row['revokes'] else 'no'}\tparams={needs or '-'}\t"
            f"auth={row['auth']}"
        )


@providers.command("show")
@click.argument("name")
def providers_show(name: str) -> None:
    """Everything the catalogs know about provider NAME, in plain words."""
    from oauthvault.providers import load_catalog
    from oauthvault.providers.credentials import load_credential_catalog
    from oauthvault.providers.describe import describe, describe_credential

    spec = load_catalog().get(name)
    credential = load_credential_catalog().get(name)
    if spec is not None:
        lines = describe(spec)
    elif credential is not None:
        lines = describe_credential(credential)
    else:
        click.echo(f"error: {name!r} is not a catalog provider (see `providers list`)", err=True)
        sys.exit(2)
    for line in lines:
        click.echo(line)
