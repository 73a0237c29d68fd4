"""``oauthvault import``: many connections from JSON lines on standard input, all or none.

One connection per line, either a credential of the credential catalog::

    {"provider": "openai", "workspace_id": "ws", "actor_id": "u1",
     "credentials": {"api_key": "sk-..."}, "params": {...}, "kind": "api_key"}

(``params`` and ``kind`` optional; ``kind``, when given, must be the catalog entry's: the
output of ``credentials get --json`` imports as it is) or an OAuth connection's tokens::

    {"provider": "google", "workspace_id": "ws", "actor_id": "u1",
     "access_token": "...", "refresh_token": "...", "expires_in": 3600,
     "scope": "openid email", "params": {...}}

(``refresh_token``, ``scope``, ``params`` and one of ``expires_in`` (seconds from now)
or ``expires_at`` (an ISO 8601 time with its offset, made ``expires_in`` when the line is
stored, 0 once past) optional). Blank lines are skipped; other keys are refused.

Three passes, so that nothing is half-written by a bad line: every line is read and
checked (JSON, shape, ids, the provider, fields against its catalog entry, parameters,
each connection once); with ``--verify`` every credential is then verified with its
provider; only then is anything written. A bad line, or a credential refused or not
verifiable, is reported by its number and reason (never a value), and nothing is stored.
Only a failure of the writes themselves (the database gone) can stop an import midway:
the lines before the one named are stored, and running the same input again is safe (a
store replaces the connection).
"""

from __future__ import annotations

import json
import math
import re
import sys
from collections import Counter
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import IO, Any

import click

from oauthvault.cli.root import fail, open_vault, plain_errors
from oauthvault.cli.stored_credentials import MAX_INPUT_BYTES
from oauthvault.errors import VaultError
from oauthvault.models import TokenKey
from oauthvault.vault import OAuthTokenCache

__all__ = ["import_connections"]

#: The kind an OAuth line's connection is counted under (as ``providers list`` says).
OAUTH = "oauth2"
_IDS = ("provider", "workspace_id", "actor_id")
_CREDENTIAL_KEYS = frozenset({*_IDS, "credentials", "params", "kind"})
_TOKEN_KEYS = frozenset(
    {*_IDS, "access_token", "refresh_token", "expires_in", "expires_at", "scope", "params"}
)
_SHOWN_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,39}$")
#: Verifications in flight at once (each is one request to a provider).
VERIFY_THREADS = 4


class BadLine(Exception):
    """A line that cannot be imported; the message never quotes a value."""


@dataclass
class Line:
    """One checked connection (its secrets never shown: ``repr`` omits them)."""

    number: int
    provider: str
    workspace_id: str
    actor_id: str
    kind: str
    params: dict[str, str] | None
    credentials: dict[str, str] | None = field(default=None, repr=False)
    access_token: str | None = field(default=None, repr=False)
    refresh_token: str | None = field(default=None, repr=False)
    expires_in: int | None = None
    expires_at: datetime | None = None
    scope: str | None = None

    @property
    def ids(self) -> tuple[str, str, str]:
        return (self.provider, self.workspace_id, self.actor_id)


def _lines(stream: IO[bytes]) -> Iterator[tuple[int, bytes | None]]:
    """Each line with its number; ``None`` for one longer than :data:`MAX_INPUT_BYTES`
    (read past, never held whole)."""
    number = 0
    while True:
        chunk = stream.readline(MAX_INPUT_BYTES + 1)
        if not chunk:
            return
        number += 1
        if len(chunk) > MAX_INPUT_BYTES and not chunk.endswith(b"\n"):
            while (rest := stream.readline(MAX_INPUT_BYTES)) and not rest.endswith(b"\n"):
                pass
            yield number, None
            continue
        yield number, chunk


def _key_name(name: str) -> str:
    return repr(name) if _SHOWN_KEY.match(name) else "a key"


class Checker:
    """Checks lines against the catalogs and the vault's rules (no I/O)."""

    def __init__(self, vault: OAuthTokenCache) -> None:
        from oauthvault.providers import load_catalog
        from oauthvault.providers.credentials import load_credential_catalog

        self.vault = vault
        self.credential_catalog = load_credential_catalog()
        self.oauth_names = frozenset(load_catalog()) | frozenset(vault.providers)
        self.now = vault.now()
        self.seen: dict[tuple[str, str, str], int] = {}

    def check(self, number: int, raw: bytes) -> Line | None:
        """The line checked (``None``: blank).

        Raises:
            BadLine: why it cannot be imported.
        """
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise BadLine("is not UTF-8") from None
        if not text.strip():
            return None
        try:
            item = json.loads(text)
        except json.JSONDecodeError as error:
            raise BadLine(f"is not JSON ({error.msg} at column {error.colno})") from None
        except (ValueError, RecursionError):  # a number too long, arrays nested too deep
            raise BadLine("is not JSON this import reads (too deep or too long a number)") from None
        if not isinstance(item, dict):
            raise BadLine("must be a JSON object")
        for name in _IDS:
            if name not in item:
                raise BadLine(f"{name} is missing")
        try:
            TokenKey(item["provider"], item["workspace_id"], item["actor_id"])
        except VaultError as error:
            raise BadLine(str(error)) from None
        if "credentials" in item and "access_token" in item:
            raise BadLine("has both credentials and access_token: one connection per line")
        try:
            if "credentials" in item:
                line = self._credential(number, item)
            elif "access_token" in item:
                line = self._tokens(number, item)
            else:
                raise BadLine("needs credentials (a credential) or access_token (OAuth tokens)")
        except VaultError as error:
            raise BadLine(str(error)) from None
        earlier = self.seen.setdefault(line.ids, number)
        if earlier != number:
            raise BadLine(f"is the same connection as line {earlier}")
        return line

    @staticmethod
    def _unknown_keys(item: Mapping[str, Any], allowed: frozenset[str], kind: str) -> None:
        for name in sorted(item):
            if name not in allowed:
                raise BadLine(f"{_key_name(name)} is not a key of a {kind} line")

    @staticmethod
    def _params(item: Mapping[str, Any]) -> dict[str, str] | None:
        params = item.get("params")
        if params is None:
            return None
        if not isinstance(params, dict):
            raise BadLine("params: must be an object of names and strings")
        return params

    def _credential(self, number: int, item: dict[str, Any]) -> Line:
        self._unknown_keys(item, _CREDENTIAL_KEYS, "credential")
        provider = item["provider"]
        if provider not in self.credential_catalog:
            if provider in self.oauth_names:
                raise BadLine(
                    f"{provider!r} is an OAuth provider: give access_token, not credentials"
                )
            raise BadLine(f"provider {provider!r} is not in the credential catalog")
        params = self._params(item)
        given = item["credentials"]
        if not isinstance(given, dict):
            raise BadLine("credentials: must be an object of field names and strings")
        fields = self.vault.check_credentials(
            provider, item["workspace_id"], item["actor_id"], given, params=params
        )
        kind = item.get("kind")
        if kind is not None and kind != fields.kind:
            raise BadLine(f"kind: {provider} takes {fields.kind} credentials")
        return Line(
            number,
            provider,
            item["workspace_id"],
            item["actor_id"],
            fields.kind,
            params,
            credentials=dict(fields),
        )

    def _tokens(self, number: int, item: dict[str, Any]) -> Line:
        self._unknown_keys(item, _TOKEN_KEYS, "token")
        provider = item["provider"]
        if provider in self.credential_catalog:
            raise BadLine(f"{provider!r} takes credentials (an object of fields), not tokens")
        if provider not in self.oauth_names:
            raise BadLine(
                f"provider {provider!r} is in neither catalog nor configured (OAUTHVAULT_CONFIG)"
            )
        params = self._params(item)
        if "expires_in" in item and "expires_at" in item:
            raise BadLine("has both expires_in and expires_at: give one")
        expires_at = self._expires_at(item.get("expires_at"))
        expires_in = item.get("expires_in")
        if expires_at is not None:
            expires_in = seconds_until(expires_at, self.now)
        self.vault.check_tokens(
            provider,
            item["workspace_id"],
            item["actor_id"],
            item["access_token"],
            item.get("refresh_token"),
            expires_in,
            item.get("scope"),
            params=params,
        )
        return Line(
            number,
            provider,
            item["workspace_id"],
            item["actor_id"],
            OAUTH,
            params,
            access_token=item["access_token"],
            refresh_token=item.get("refresh_token"),
            expires_in=expires_in,
            expires_at=expires_at,
            scope=item.get("scope"),
        )

    @staticmethod
    def _expires_at(value: object) -> datetime | None:
        if value is None:
            return None
        if not isinstance(value, str):
            raise BadLine("expires_at: must be an ISO 8601 time")
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            raise BadLine("expires_at: must be an ISO 8601 time") from None
        if moment.tzinfo is None:
            raise BadLine("expires_at: must carry its offset (Z or +hh:mm)")
        return moment


def seconds_until(moment: datetime, now: datetime) -> int:
    """``expires_at`` as ``expires_in``: whole seconds left, 0 once past."""
    return max(0, math.floor((moment - now).total_seconds()))


def _verify(vault: OAuthTokenCache, line: Line) -> tuple[str, str]:
    """One credential line's verification: its outcome and why (never a value)."""
    assert line.credentials is not None  # noqa: S101 - credential lines only
    try:
        verdict = vault.verify_new_credentials(line.provider, line.credentials, params=line.params)
    except VaultError as error:  # no token could be minted; a value the URL cannot carry
        return "unavailable", str(error)
    return verdict.outcome, verdict.detail


def _write(vault: OAuthTokenCache, line: Line) -> None:
    if line.credentials is not None:
        vault.store_credentials(*line.ids, line.credentials, params=line.params, verify=False)
        return
    assert line.access_token is not None  # noqa: S101 - a token line
    expires_in = line.expires_in
    if line.expires_at is not None:
        expires_in = seconds_until(line.expires_at, vault.now())
    vault.store_tokens(
        *line.ids,
        line.access_token,
        line.refresh_token,
        expires_in,
        line.scope,
        params=line.params,
    )


def _by_kind(lines: list[Line]) -> str:
    counts = Counter(line.kind for line in lines)
    return ", ".join(f"{kind} {count}" for kind, count in sorted(counts.items()))


def _summary(read: int, blank: int, bad: int, verified: str, stored: str) -> None:
    click.echo(f"lines read: {read}")
    click.echo(f"skipped: {blank} blank")
    click.echo(f"bad: {bad}")
    click.echo(f"verified: {verified}")
    click.echo(f"stored: {stored}")


@click.command("import", short_help="Import connections from JSON lines, all or none.")
@click.option(
    "--verify/--no-verify",
    default=True,
    show_default=True,
    help="Verify every credential with its provider before anything is stored.",
)
@click.option("--dry-run", is_flag=True, help="Check (and verify) only: store nothing.")
@click.pass_context
@plain_errors
def import_connections(context: click.Context, verify: bool, dry_run: bool) -> None:
    """Import connections from standard input, one JSON object per line: a credential
    (provider, workspace_id, actor_id, credentials, params?) or OAuth tokens (provider,
    workspace_id, actor_id, access_token, refresh_token?, expires_in? or expires_at?,
    scope?, params?). Blank lines are skipped; a line is at most 1 MiB.

    Every line is checked first, then (--verify, the default) every credential is verified
    with its provider; a bad line or a refused credential is reported by its number and
    nothing at all is stored. A connection already stored under the same ids is replaced.
    Exit status 0 when stored (or checked, with --dry-run), 1 when a line was bad or
    refused, 2 on an error. Values are never printed."""
    vault = open_vault(context)
    checker = Checker(vault)
    lines: list[Line] = []
    read = blank = bad = 0
    for number, raw in _lines(sys.stdin.buffer):
        read = number
        try:
            if raw is None:
                raise BadLine(f"is longer than {MAX_INPUT_BYTES} bytes")
            line = checker.check(number, raw)
        except BadLine as problem:
            bad += 1
            click.echo(f"line {number}: {problem}", err=True)
            continue
        if line is None:
            blank += 1
        else:
            lines.append(line)
    if bad:
        _summary(read, blank, bad, "no (a line is bad)", "0")
        click.echo(f"error: {bad} bad line(s): nothing stored", err=True)
        sys.exit(1)
    verified = "no (--no-verify)"
    to_verify = [line for line in lines if line.credentials is not None]
    if verify:
        with ThreadPoolExecutor(VERIFY_THREADS) as pool:
            verdicts = list(pool.map(lambda each: _verify(vault, each), to_verify))
        outcomes = Counter(outcome for outcome, _ in verdicts)
        verified = (
            f"{len(to_verify)} credential(s): {outcomes['valid']} valid, "
            f"{outcomes['refused']} refused, {outcomes['unavailable']} unavailable, "
            f"{outcomes['skipped']} skipped (no verification request)"
        )
        failed = 0
        for line, (outcome, detail) in zip(to_verify, verdicts, strict=True):
            if outcome == "refused":
                click.echo(f"line {line.number}: refused by {line.provider} ({detail})", err=True)
            elif outcome == "unavailable":
                click.echo(f"line {line.number}: could not be verified ({detail})", err=True)
            else:
                continue
            failed += 1
        if failed:
            _summary(read, blank, bad, verified, "0")
            click.echo(
                f"error: {failed} credential(s) refused or not verifiable: nothing stored "
                "(--no-verify stores without asking)",
                err=True,
            )
            sys.exit(1)
    if dry_run:
        would = f" (would store {len(lines)}: {_by_kind(lines)})" if lines else ""
        _summary(read, blank, bad, verified, f"0 (dry run){would}")
        return
    for index, line in enumerate(lines):
        try:
            _write(vault, line)
        except VaultError as error:
            _summary(read, blank, bad, verified, f"{index} ({_by_kind(lines[:index]) or '-'})")
            fail(
                f"line {line.number} could not be stored ({error}); the {index} before it "
                "were, the rest were not: running the same input again is safe"
            )
    _summary(read, blank, bad, verified, f"{len(lines)} ({_by_kind(lines) or '-'})")
