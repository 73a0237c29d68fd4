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
    """One line per catalog provider: name, display name, auth style, refresh, revocation and
    the connection parameters it needs."""
    from oauthvault.providers import load_catalog
    from oauthvault.providers.describe import summary

    for name, spec in sorted(load_catalog().items()):
        row = summary(spec)
        if as_json:
            click.echo(json.dumps(row, sort_keys=True))
            continue
        needs = ",".join(
            p["name"] + ("" if p["required"] else "?")
            for p in row["connection_params"]
            if p["source"] == "link"
        )
        click.echo(
            f"{name}\t{row['display_name']}\t{row['auth_style']}\t"
            f"refresh={'yes' if row['refreshes'] else 'no'}\t"
            f"revoke={'yes' if row['revokes'] else 'no'}\tparams={needs or '-'}"
        )


@providers.command("show")
@click.argument("name")
def providers_show(name: str) -> None:
    """Everything the catalog knows about provider NAME, in plain words."""
    from oauthvault.providers import load_catalog
    from oauthvault.providers.describe import describe

    spec = load_catalog().get(name)
    if spec is None:
        click.echo(f"error: {name!r} is not a catalog provider (see `providers list`)", err=True)
        sys.exit(2)
    for line in describe(spec):
        click.echo(line)
