"""``oauthvault credentials``: store, read and verify non-OAuth credentials (API keys,
usernames and passwords, named fields) of the credential catalog's providers.

A secret never comes from the command line (where ``ps`` and shell history would keep
it): ``store`` reads the fields from standard input as one JSON object, or asks for each
at a terminal (secret ones without echo). Only ``get`` prints a value, and its read is
recorded in the audit trail.
"""

from __future__ import annotations

import getpass
import json
import socket
import sys
from collections.abc import Mapping
from typing import TYPE_CHECKING

import click

from oauthvault.cli.root import fail, open_vault, param_options, plain_errors

if TYPE_CHECKING:
    from oauthvault.providers.credentials import CredentialSpec

__all__ = ["MAX_INPUT_BYTES", "credential_spec", "credentials", "stdin_is_terminal"]

#: The most standard input ``credentials store`` reads (and the longest ``import`` line).
MAX_INPUT_BYTES = 1 << 20
#: The audit trail's caller for reads made with this command line.
AUDIT_CALLER = "cli"


def stdin_is_terminal() -> bool:
    """Whether standard input is a terminal (then ``store`` asks for each field)."""
    return sys.stdin.isatty()


def credential_spec(provider: str) -> CredentialSpec:
    """The credential catalog's entry for ``provider``; a plain error naming what it is
    otherwise (an OAuth provider, or nothing known)."""
    from oauthvault.providers import load_catalog
    from oauthvault.providers.credentials import load_credential_catalog

    spec = load_credential_catalog().get(provider)
    if spec is not None:
        return spec
    if provider in load_catalog():
        fail(
            f"{provider!r} is an OAuth provider, not a credential one: connect it, or "
            "import its tokens with `oauthvault import`"
        )
    fail(f"{provider!r} is not in the credential catalog (see `oauthvault providers list`)")


def _who() -> str | None:
    """Who runs the command, for the audit trail's source: ``user@host``."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no login name (a container without a passwd entry)
        user = "?"
    return f"{user}@{socket.gethostname()}"


def _read_fields() -> dict[str, object]:
    """The fields, read from standard input as one JSON object (never echoed back)."""
    data = sys.stdin.buffer.read(MAX_INPUT_BYTES + 1)
    if len(data) > MAX_INPUT_BYTES:
        fail(f"standard input is longer than {MAX_INPUT_BYTES} bytes")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        fail("standard input is not UTF-8")
    if not text.strip():
        fail('no credential on standard input: give its fields as JSON, {"api_key": "..."}')
    try:
        given = json.loads(text)
    except json.JSONDecodeError as error:
        fail(f"standard input is not JSON ({error.msg} at line {error.lineno})")
    except (ValueError, RecursionError):  # a number too long, arrays nested too deep
        fail("standard input is not JSON this command reads (too deep or too long a number)")
    if not isinstance(given, dict):
        fail("standard input must be a JSON object of field names and values")
    return given


def _ask_fields(spec: CredentialSpec, params: dict[str, str]) -> dict[str, object]:
    """Ask for each field at the terminal (secret ones without echo), then for any
    required connection parameter not given with ``--param``."""
    click.echo(f"{spec.display_name}: {spec.auth} credential", err=True)
    fields: dict[str, object] = {}
    for each in spec.fields:
        if each.help_url:
            click.echo(f"  {each.label}: see {each.help_url}", err=True)
        label = each.label + ("" if each.required else " (optional, Enter to skip)")
        value = click.prompt(
            label,
            hide_input=each.secret,
            default=None if each.required else "",
            show_default=False,
            err=True,
        )
        if value:
            fields[each.name] = value
    for param in spec.required_params():
        if param.name not in params:
            params[param.name] = click.prompt(param.label, err=True)
    return fields


def _params_text(params: Mapping[str, str]) -> str:
    return ",".join(f"{name}={value}" for name, value in sorted(params.items())) or "-"


@click.group()
def credentials() -> None:
    """Store, read and verify API keys and other credentials."""


@credentials.command("store", short_help="Store a credential read from standard input.")
@click.argument("provider")
@click.argument("workspace_id")
@click.argument("actor_id")
@click.option(
    "--param",
    "params",
    multiple=True,
    metavar="NAME=VALUE",
    help="A connection parameter (e.g. subdomain=acme); repeatable. Never a secret.",
)
@click.option(
    "--verify/--no-verify",
    default=True,
    show_default=True,
    help="Ask the provider whether the credential works before storing it.",
)
@click.pass_context
@plain_errors
def credentials_store(
    context: click.Context,
    provider: str,
    workspace_id: str,
    actor_id: str,
    params: tuple[str, ...],
    verify: bool,
) -> None:
    """Store (or replace) the credential of PROVIDER (a credential catalog entry, see
    `providers list`) for ACTOR_ID in WORKSPACE_ID.

    The fields are read from standard input as one JSON object, e.g.
    `{"api_key": "..."}`; at a terminal each field is asked for instead (secret ones
    without echo). No option takes a secret. With --verify (the default) the provider is
    asked first, and a credential it refuses is not stored. Prints what was stored (its
    kind, field names and parameters), never a value."""
    spec = credential_spec(provider)
    given = param_options(params)
    fields = _ask_fields(spec, given) if stdin_is_terminal() else _read_fields()
    vault = open_vault(context)
    stored = vault.store_credentials(
        provider,
        workspace_id,
        actor_id,
        fields,  # type: ignore[arg-type]  # checked by the catalog entry
        params=given,
        verify=verify,
    )
    listed = vault.list_connections(provider, workspace_id, actor_id=actor_id, limit=1)
    if not verify:
        verified = "no (--no-verify)"
    elif spec.verify is None and not spec.minted:
        verified = "no (the provider documents no verification request)"
    else:
        verified = "yes"
    click.echo(f"stored {provider}/{workspace_id}/{actor_id}")
    click.echo(f"kind: {stored.kind}")
    click.echo(f"fields: {', '.join(sorted(stored))}")
    click.echo(f"params: {_params_text(listed[0].params if listed else given)}")
    click.echo(f"verified: {verified}")


@credentials.command("get", short_help="Print a stored credential's fields (audited).")
@click.argument("provider")
@click.argument("workspace_id")
@click.argument("actor_id")
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="One JSON object, as `oauthvault import` reads it.",
)
@click.pass_context
@plain_errors
def credentials_get(
    context: click.Context, provider: str, workspace_id: str, actor_id: str, as_json: bool
) -> None:
    """Print the fields of a stored credential, values included: a deliberate read of a
    secret, recorded in the audit trail (caller `cli`, source user@host) unless
    OAUTHVAULT_AUDIT is off."""
    vault = open_vault(context, audit_caller=AUDIT_CALLER)
    fields = vault.get_credentials(
        provider, workspace_id, actor_id, caller=AUDIT_CALLER, source=_who()
    )
    listed = vault.list_connections(provider, workspace_id, actor_id=actor_id, limit=1)
    params = dict(listed[0].params) if listed else {}
    if as_json:
        row = {
            "provider": provider,
            "workspace_id": workspace_id,
            "actor_id": actor_id,
            "kind": fields.kind,
            "credentials": dict(fields),
        }
        if params:
            row["params"] = params
        click.echo(json.dumps(row))
        return
    click.echo(f"kind: {fields.kind}")
    for name in sorted(fields):
        click.echo(f"{name}: {fields[name]}")
    for name, value in sorted(params.items()):
        click.echo(f"params.{name}: {value}")
    if listed:
        click.echo(f"status: {listed[0].status}")
        click.echo(f"last_error: {listed[0].last_error or '-'}")


_VERIFIED = {
    "valid": "valid: the provider accepts the credential",
    "refused": "refused: the provider refused the credential (the connection needs_reauth)",
    "unavailable": "unavailable: the provider could not be asked; nothing changed",
    "skipped": "skipped: the provider documents no verification request",
}


@credentials.command("verify", short_help="Ask the provider whether a stored credential works.")
@click.argument("provider")
@click.argument("workspace_id")
@click.argument("actor_id")
@click.pass_context
@plain_errors
def credentials_verify(
    context: click.Context, provider: str, workspace_id: str, actor_id: str
) -> None:
    """Ask the provider whether the stored credential still works, and mark the
    connection so (refused: needs_reauth; valid: active). Exit status 0 when valid or
    not verifiable (skipped), 1 when refused, 2 when the provider could not be asked."""
    credential_spec(provider)
    outcome = open_vault(context).verify_credentials(provider, workspace_id, actor_id)
    click.echo(_VERIFIED[outcome])
    if outcome == "refused":
        sys.exit(1)
    if outcome == "unavailable":
        sys.exit(2)
