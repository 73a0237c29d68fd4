"""``oauthvault`` command line: a thin layer over the library.

Every command reads the same settings as the library (``DATABASE_URL``, ``REDIS_URL``,
``OAUTH_ENCRYPTION_KEY``). Exit status: 0 done; 1 a check that found problems (``doctor``,
``worker --once``); 2 an error, printed as one ``error:`` line (a missing connection too)
or as click's usage message.
"""

from __future__ import annotations

import functools
import json
import logging
import re
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, NoReturn, TypeVar

import click

from oauthvault import __version__
from oauthvault.config import Settings
from oauthvault.crypto.keyring import generate_key
from oauthvault.errors import VaultError
from oauthvault.vault import OAuthTokenCache

__all__ = ["main"]

F = TypeVar("F", bound=Callable[..., Any])
MASK = "[secure]"


def _plain_errors(command: F) -> F:
    """Turn library errors into one line on stderr and exit status 2: no stack traces."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except VaultError as error:
            click.echo(f"error: {error}", err=True)
            sys.exit(2)

    return wrapper  # type: ignore[return-value]


def _not_found(provider: str, workspace_id: str, actor_id: str) -> NoReturn:
    click.echo(f"error: no connection {provider}/{workspace_id}/{actor_id}", err=True)
    sys.exit(2)


def _vault(context: click.Context) -> OAuthTokenCache:
    vault: OAuthTokenCache = context.with_resource(
        OAuthTokenCache(settings=context.ensure_object(dict)["settings"]())
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


@main.command()
def keygen() -> None:
    """Print a new encryption key for OAUTH_ENCRYPTION_KEY."""
    click.echo(generate_key())


@main.command()
@click.pass_context
@_plain_errors
def migrate(context: click.Context) -> None:
    """Create or upgrade the database schema (Alembic)."""
    from oauthvault.storage.migrations import HEAD_REVISION, upgrade

    location = context.obj["settings"]().database_location
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


@main.command(short_help="Show who was handed which token (the audit trail).")
@click.option("--workspace", "workspace_id", required=True, help="The workspace to show.")
@click.option("--provider")
@click.option("--actor", "actor_id")
@click.option("--since", type=click.DateTime(["%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%d"]))
@click.option("--after", default=0, show_default=True, type=click.IntRange(0))
@click.option("--limit", default=100, show_default=True, type=click.IntRange(1, 1000))
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@click.pass_context
@_plain_errors
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
    settings = context.obj["settings"]()
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


@main.command("rotate-key", short_help="Re-encrypt every row with the newest key.")
@click.option("--batch-size", default=500, show_default=True, type=click.IntRange(1, 100_000))
@click.pass_context
@_plain_errors
def rotate_key(context: click.Context, batch_size: int) -> None:
    """Re-encrypt every row with the newest key of OAUTH_ENCRYPTION_KEY.

    Safe to run while the service runs, and to run again if interrupted.
    """
    vault = _vault(context)
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


@main.command(short_help="Check configuration, database, keys and Redis.")
@click.pass_context
def doctor(context: click.Context) -> None:
    """Check configuration, database, key ring and Redis; say plainly what is wrong."""
    from oauthvault.doctor import run_checks

    problems = 0
    for check in run_checks(context.obj["settings"]):
        mark = "ok  " if check.ok else "FAIL"
        click.echo(f"{mark} {check.name}: {check.detail}")
        problems += not check.ok
    if problems:
        click.echo(f"{problems} problem(s) found", err=True)
        sys.exit(1)


@main.group()
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


@main.group()
def tokens() -> None:
    """Inspect and delete stored connections."""


@tokens.command("list")
@click.option("--provider")
@click.option("--workspace", "workspace_id")
@click.option("--limit", default=100, show_default=True, type=click.IntRange(1, 100_000))
@click.pass_context
@_plain_errors
def tokens_list(
    context: click.Context, provider: str | None, workspace_id: str | None, limit: int
) -> None:
    """List connections (never their tokens)."""
    rows = _vault(context).list_connections(provider, workspace_id, limit)
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
@_plain_errors
def tokens_get(
    context: click.Context, provider: str, workspace_id: str, actor_id: str, show_secrets: bool
) -> None:
    """Show one connection; tokens are masked unless --show-secrets is given."""
    vault = _vault(context)
    found = vault.get_tokens(provider, workspace_id, actor_id)
    if found is None:
        _not_found(provider, workspace_id, actor_id)
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
@_plain_errors
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
    given: dict[str, str] = {}
    for item in params:
        name, sep, value = item.partition("=")
        if not sep or not name:
            click.echo(f"error: --param wants NAME=VALUE, got {name or item!r}", err=True)
            sys.exit(2)
        given[name] = value
    secret = sys.stdin.readline().rstrip("\r\n") if client_secret_stdin else None
    if (client_id is None) != (secret is None):
        click.echo("error: --client-id goes with --client-secret-stdin", err=True)
        sys.exit(2)
    tokens = _vault(context).store_client_credentials(
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
@_plain_errors
def tokens_delete(
    context: click.Context, provider: str, workspace_id: str, actor_id: str, revoke: bool
) -> None:
    """Delete one connection from the database and the cache (with --revoke, revoke it at
    the provider first; it is deleted here whatever the provider answers)."""
    vault = _vault(context)
    if not revoke:
        if not vault.delete_tokens(provider, workspace_id, actor_id):
            _not_found(provider, workspace_id, actor_id)
        click.echo("deleted")
        return
    outcome = vault.delete_tokens(provider, workspace_id, actor_id, revoke=True)
    if not outcome.deleted:
        _not_found(provider, workspace_id, actor_id)
    said = {
        True: "revoked at the provider",
        False: "the provider did not confirm the revocation",
        None: "the provider has no revocation endpoint",
    }[outcome.revoked]
    click.echo(f"deleted ({said})")


@main.command(short_help="Run the HTTP service.")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=click.IntRange(1, 65535))
@click.pass_context
@_plain_errors
def serve(context: click.Context, host: str, port: int) -> None:
    """Run the HTTP service (configured by OAUTHVAULT_CONFIG and the environment)."""
    import uvicorn

    from oauthvault.service import create_app
    from oauthvault.service.config import service_config_from

    settings = context.obj["settings"]()
    url_host = "127.0.0.1" if host in ("0.0.0.0", "::") else host  # noqa: S104 - a comparison
    config = service_config_from(settings, default_public_url=f"http://{url_host}:{port}")
    app = create_app(config, settings)
    log = logging.getLogger("oauthvault.serve")
    log.setLevel(logging.INFO)
    log.info(
        "oauthvault %s: database %s, %s, %d provider(s)%s, %d API key(s), public URL %s",
        __version__,
        settings.database_location.description,
        "Redis cache" if settings.redis_url_value else "no Redis (database only)",
        len(config.providers),
        f" ({', '.join(sorted(config.providers))})" if config.providers else "",
        len(config.api_keys),
        config.public_url,
    )
    if not config.api_keys:
        log.warning(
            "no API key is configured: every /v1 call will be refused; create one with "
            "`oauthvault apikey create --name …` and add it to OAUTHVAULT_CONFIG"
        )
    logging.getLogger("oauthvault.access").setLevel(logging.INFO)
    # uvicorn's access log prints query strings (codes, states, link tokens): ours does not.
    uvicorn.run(app, host=host, port=port, log_level="info", access_log=False)


@main.command(short_help="Refresh connections before they expire.")
@click.option(
    "--interval",
    default=30.0,
    show_default=True,
    type=click.FloatRange(min=0.1),
    help="Seconds between passes.",
)
@click.option(
    "--lead-time",
    default=300.0,
    show_default=True,
    type=click.FloatRange(min=0),
    help="Refresh tokens expiring within this many seconds.",
)
@click.option("--once", is_flag=True, help="Run one pass and exit.")
@click.option(
    "--metrics-port",
    type=click.IntRange(1, 65535),
    default=None,
    help="Serve Prometheus metrics on this port (127.0.0.1; see --metrics-host).",
)
@click.option("--metrics-host", default="127.0.0.1", show_default=True, help="Metrics address.")
@click.pass_context
@_plain_errors
def worker(
    context: click.Context,
    interval: float,
    lead_time: float,
    once: bool,
    metrics_port: int | None,
    metrics_host: str,
) -> None:
    """Refresh connections before they expire; safe to run on several hosts. Stops on SIGTERM."""
    from oauthvault.worker import run_worker

    logging.getLogger("oauthvault.refresher").setLevel(logging.INFO)
    done = run_worker(
        context.obj["settings"](),
        interval=interval,
        lead_time=lead_time,
        once=once,
        metrics_port=metrics_port,
        metrics_host=metrics_host,
    )
    if done is not None:
        click.echo(f"{len(done.refreshed)} fresh, {len(done.failed)} failed")
        sys.exit(1 if done.failed else 0)


@main.group()
def apikey() -> None:
    """Create API keys for the HTTP service."""


@apikey.command("create", short_help="Print a new API key and its config entry.")
@click.option("--name", required=True, help="A name for logs, e.g. the calling service.")
@click.option("--workspace", "workspaces", multiple=True, help="Limit the key to a workspace.")
def apikey_create(name: str, workspaces: tuple[str, ...]) -> None:
    """Print a new key once, and the [[api_keys]] entry (its hash) for the config file."""
    import json

    from oauthvault.service.apikeys import generate_api_key, hash_api_key

    key = generate_api_key()
    click.echo(f"API key (shown once): {key}\n")
    click.echo("Add to the OAUTHVAULT_CONFIG file:\n")
    click.echo("[[api_keys]]")
    click.echo(f"name = {json.dumps(name)}")
    click.echo(f'sha256 = "{hash_api_key(key)}"')
    if workspaces:
        click.echo(f"workspaces = {json.dumps(list(workspaces))}")


@main.group()
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


@main.command(short_help="Store, read and delete a sample connection.")
@click.pass_context
@_plain_errors
def demo(context: click.Context) -> None:
    """Store, read and delete a sample connection, showing where everything goes."""
    vault = _vault(context)
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
