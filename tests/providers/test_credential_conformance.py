"""Conformance: every entry of the credential catalog, emulated, driven through the vault.

One credential API emulator (:mod:`tests.helpers.credential_api`) plays every entry's API
and one vault (SQLite) is configured to send each entry's requests to it. Each entry goes
through six steps, one parametrized test each (ids are the entry names), each on its own
connection so that one step's failure does not hide another's result:

1. stored verified: sample values matching the entry's patterns, derived here (a field's
   ``example``, else :data:`SAMPLES` by the pattern's start, else a generic value), and link
   parameters from each parameter's ``example``;
2. refused: a different credential of the same shape the API does not know is not kept;
3. read back exactly, shown nowhere (``repr``, ``str``, the listing);
4. placed exactly as documented: the request the vault sent (the verification request,
   recorded by the emulator) is compared with what this module computes itself from the
   entry's raw TOML table (headers, query parameters, HTTP Basic; path and method);
5. a 401 and then a 403 from the API mark the connection ``needs_reauth``, one
   ``status_changed`` event each;
6. deleted.

The httpx and requests adapters (:mod:`oauthvault.adapters`) serve OAuth connections only
(they ask for an access token), so step 4 checks the verification request the vault sent;
for an entry that documents none, a request placed by :meth:`CredentialSpec.placement` (what
an adapter would use) is checked against the same independent expectation.

A PostgreSQL + Redis pass runs the same steps for a few entries of each kind and placement,
and the last test checks that no secret used in this module ever reached a log line.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import re
import tomllib
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from oauthvault import (
    InvalidCredentials,
    OAuthTokenCache,
    TokenNotFound,
    generate_key,
)
from oauthvault.models import ConnectionEvent
from oauthvault.providers.credential_apps import CredentialApp
from oauthvault.providers.credentials import CredentialSpec, load_credential_catalog

from tests.helpers.credential_api import CredentialApiEmulator, Seen

# Version-independent, like the OAuth conformance suite: scripts/test runs it on the first
# Python only. Fast (one emulator, one vault): not `slow`.
pytestmark = pytest.mark.once

#: The entries whose credential is used as it is (api_key, basic, fields). Minted entries
#: (app, two_step) have their own suites against the GitHub, Google and two-step emulators:
#: tests/oauth/test_app_tokens.py and tests/vault/test_minted_credentials.py.
ALL: dict[str, CredentialSpec] = load_credential_catalog()
CATALOG: dict[str, CredentialSpec] = {n: s for n, s in ALL.items() if not s.minted}
NAMES = sorted(CATALOG)
#: Entries with and without a verification request (the second are stored unverified, and
#: a refusal reaches them only from their API: a proxied call, an adapter's 401).
VERIFIED = [name for name in NAMES if CATALOG[name].verify is not None]
UNVERIFIED = [name for name in NAMES if CATALOG[name].verify is None]
#: The catalog's raw tables, read here with tomllib: the expectations of step 4 are computed
#: from them, not from CredentialSpec.
RAW: dict[str, dict[str, Any]] = tomllib.loads(
    resources.files("oauthvault.providers").joinpath("credentials.toml").read_text("utf-8")
)["providers"]
WORKSPACE = "ws-conformance"
#: A few entries for the PostgreSQL + Redis pass: each kind, headers, Basic, a query, a
#: parameter in the host, a non-secret field in the path, a parameter taken from a field.
BACKEND_PASS = ("openai", "anthropic", "twilio", "datadog", "trello-api-key", "mailchimp-api-key")

#: Sample values by the start of a field's pattern (the longest start that fits wins), for
#: fields whose pattern the generic sample does not match; ``token`` is 32 hex digits.
SAMPLES: dict[str, Callable[[str], str]] = {
    r"^sk-": lambda token: f"sk-{token}",
    r"^sk-ant-": lambda token: f"sk-ant-{token}",
    r"^(sk|rk)_(live|test)_": lambda token: f"sk_test_{token}",
    r"^AC[0-9a-fA-F]": lambda token: f"AC{token}",
    r"^SG\.": lambda token: f"SG.{token}",
    r"^re_": lambda token: f"re_{token}",
    r"^glpat-": lambda token: f"glpat-{token}",
    r"^(github_pat_|ghp_)": lambda token: f"github_pat_{token}",
    r"^pk_": lambda token: f"pk_{token}",
    r"^\S{20}$": lambda token: token[:20],
    r"^\S{8,500}-[a-z]+[0-9]+$": lambda token: f"{token}-us6",
    r"^[0-9]": lambda token: str(int(token[:15], 16))[:12],
}

#: Every secret value this module used (with its entry), and every log line it captured
#: (DEBUG and up).
SECRETS: dict[str, str] = {}
LOGS: list[str] = []


# --- sample values -----------------------------------------------------------------------------


def _token(*parts: str) -> str:
    return hashlib.sha256("/".join(parts).encode()).hexdigest()[:32]


def sample_value(name: str, field: Mapping[str, Any], variant: str) -> str:
    """A value for ``field`` (a raw TOML field table) of entry ``name`` that fullmatches its
    pattern: its ``example`` when that matches (non-secret fields only for a variant other
    than ``good``, so that the variants differ), else the :data:`SAMPLES` row of the
    pattern's longest matching start, else the token itself."""
    pattern: str | None = field.get("pattern")
    example: str | None = field.get("example")
    secret = bool(field["secret"])

    def fits(value: str) -> bool:
        return pattern is None or re.fullmatch(pattern, value) is not None

    if example is not None and fits(example) and (variant == "good" or not secret):
        return example
    token = _token(name, field["name"], variant if secret else "good")
    starts = [start for start in SAMPLES if pattern is not None and pattern.startswith(start)]
    value = SAMPLES[max(starts, key=len)](token) if starts else token
    if not fits(value):
        pytest.fail(
            f"{name}: no sample fits the pattern of field {field['name']!r} ({pattern}): add a "
            "row to SAMPLES in tests/providers/test_credential_conformance.py",
            pytrace=False,
        )
    return value


def sample_credentials(name: str, variant: str = "good") -> dict[str, str]:
    values = {each["name"]: sample_value(name, each, variant) for each in RAW[name]["fields"]}
    SECRETS.update({values[each]: name for each in secret_names(name)})
    return values


def link_params(name: str) -> dict[str, str]:
    """Each link parameter's ``example`` (checked against its pattern). A required one
    without an example fails the entry: the catalog must show what a value looks like."""
    params: dict[str, str] = {}
    for param, table in RAW[name].get("connection_params", {}).items():
        if table.get("source") != "link":
            continue
        example = table.get("example")
        if example is None:
            if table.get("required"):
                pytest.fail(
                    f"{name}: the required link parameter {param!r} has no example in "
                    "credentials.toml",
                    pytrace=False,
                )
            continue
        pattern = table.get("pattern")
        if pattern is not None and not re.fullmatch(pattern, example):
            pytest.fail(
                f"{name}: the example of link parameter {param!r} breaks its own pattern",
                pytrace=False,
            )
        params[param] = example
    return params


def derived_params(name: str, credentials: Mapping[str, str]) -> dict[str, str]:
    """The parameters the raw table takes from a field (group 1 of ``extract``)."""
    derived: dict[str, str] = {}
    for param, table in RAW[name].get("connection_params", {}).items():
        if table.get("source") == "credential":
            found = re.search(table["extract"], credentials[table["path"]])
            assert found is not None, f"{name}: {param} cannot be taken from the sample"
            derived[param] = found.group(1)
    return derived


# --- what the raw table says a request looks like ---------------------------------------------


def _fill(text: str, values: Mapping[str, str]) -> str:
    return re.sub(r"\{(\w+)\}", lambda match: values[match.group(1)], text)


@dataclass(frozen=True)
class Expected:
    """A request as the raw TOML table documents it (values: never shown)."""

    method: str
    path: str
    headers: dict[str, str]
    query: dict[str, str]
    basic: tuple[str, str] | None

    def __repr__(self) -> str:
        return f"Expected({self.method} {self.path}, headers={sorted(self.headers)})"


def expected_request(name: str, credentials: Mapping[str, str], path: str | None) -> Expected:
    """The request the emulator must receive for entry ``name``: ``path`` (the verification
    path, or ``/`` for an entry without one) under the emulator's mount of the API base
    URL, with the credential placed as the raw table says."""
    raw = RAW[name]
    values = {**link_params(name), **derived_params(name, credentials), **credentials}
    public = {k: v for k, v in values.items() if k not in secret_names(name)}
    base = urlsplit(raw["api_base_url"])
    mounted = "".join(f"/{public[each]}" for each in re.findall(r"\{(\w+)\}", base.netloc))
    verify = raw.get("verify")
    method = verify["method"] if verify is not None and path is not None else "GET"
    full_path = f"/{name}{mounted}{_fill(base.path, public)}{_fill(path or '/', public)}"
    basic = None
    if "basic" in raw:
        basic = (_fill(raw["basic"]["username"], values), _fill(raw["basic"]["password"], values))
    return Expected(
        method=method,
        path=full_path,
        headers={k: _fill(v, values) for k, v in raw.get("headers", {}).items()},
        query={k: _fill(v, values) for k, v in raw.get("query", {}).items()},
        basic=basic,
    )


def secret_names(name: str) -> set[str]:
    return {each["name"] for each in RAW[name]["fields"] if each["secret"]}


def placement_problems(seen: Seen, expected: Expected, secrets: set[str]) -> list[str]:
    """How a received request differs from the expectation, naming headers and
    parameters only (values are never quoted)."""
    problems = []
    if seen.method != expected.method:
        problems.append(f"method {seen.method}, documented {expected.method}")
    if seen.path != expected.path:
        problems.append(f"path {seen.path}, documented {expected.path}")
    received: dict[str, list[str]] = {}
    for header, value in seen.headers:
        received.setdefault(header.lower(), []).append(value)
    wanted = {header.lower(): value for header, value in expected.headers.items()}
    if expected.basic is not None:
        pair = ":".join(expected.basic).encode()
        wanted["authorization"] = "Basic " + base64.b64encode(pair).decode("ascii")
    for header, value in wanted.items():
        got = received.get(header, [])
        if got != [value]:
            problems.append(f"header {header}: {len(got)} value(s), not the documented one")
    queried: dict[str, list[str]] = {}
    for key, value in seen.query:
        queried.setdefault(key, []).append(value)
    for key, value in expected.query.items():
        if queried.get(key, []) != [value]:
            problems.append(f"query parameter {key}: not the documented value")
    for key in set(queried) - set(expected.query):
        problems.append(f"query parameter {key}: not documented")
    for header, values in received.items():
        if header not in wanted and any(secret in v for v in values for secret in secrets):
            problems.append(f"header {header}: carries a secret, not documented")
    if any(secret in seen.path for secret in secrets):
        problems.append("the path carries a secret")
    return problems


# --- fixtures ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def api() -> Iterator[CredentialApiEmulator]:
    """The emulator, knowing every entry's ``good`` sample (with its parameters)."""
    emulator = CredentialApiEmulator(CATALOG, keep_values=True).start()
    for name in NAMES:
        try:
            accept(emulator, name)
        except pytest.fail.Exception:
            pass  # that entry's tests fail with the reason
    yield emulator
    emulator.stop()


def accept(api: CredentialApiEmulator, name: str) -> None:
    """The API of ``name`` takes its ``good`` sample (and nothing else) from now on."""
    credentials = sample_credentials(name)
    params = {**link_params(name), **derived_params(name, credentials)}
    api.forget(name)
    api.accept(name, credentials, params)


def parameters(name: str) -> dict[str, str]:
    """The link parameters a connection of ``name`` is stored with."""
    return link_params(name)


@pytest.fixture(scope="module")
def apps(api: CredentialApiEmulator) -> dict[str, CredentialApp]:
    return {name: CredentialApp(name, api.base_override(name)) for name in NAMES}


@dataclass
class Vault:
    vault: OAuthTokenCache
    events: list[ConnectionEvent]

    def changes(self, name: str, actor: str) -> list[ConnectionEvent]:
        return [
            event
            for event in self.events
            if event.kind == "status_changed"
            and (event.provider, event.workspace_id, event.actor_id) == (name, WORKSPACE, actor)
        ]


@pytest.fixture(scope="module")
def sqlite_vault(
    apps: dict[str, CredentialApp], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Vault]:
    path: Path = tmp_path_factory.mktemp("credential_conformance") / "vault.db"
    events: list[ConnectionEvent] = []
    with OAuthTokenCache(
        f"sqlite:///{path}", "", generate_key(), credential_apps=apps, on_event=events.append
    ) as vault:
        yield Vault(vault, events)


@pytest.fixture(autouse=True)
def _logs(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """Every test's log output at DEBUG, kept for :func:`test_no_secret_reaches_a_log_line`."""
    caplog.set_level(logging.DEBUG)
    yield
    formatter = logging.Formatter("%(levelname)s %(name)s %(message)s")
    for phase in ("setup", "call"):
        LOGS.extend(formatter.format(record) for record in caplog.get_records(phase))


# --- the steps (each on a connection of its own) ------------------------------------------------


def new_requests(api: CredentialApiEmulator, name: str, since: int) -> list[Seen]:
    return [seen for seen in api.seen[since:] if seen.path.startswith(f"/{name}/")]


def differing(got: Mapping[str, str], wanted: Mapping[str, str]) -> list[str]:
    """The names whose values differ (values are never quoted in a failure)."""
    return sorted(key for key in set(got) | set(wanted) if got.get(key) != wanted.get(key))


def store(vault: Vault, name: str, actor: str, *, verify: bool = True) -> dict[str, str]:
    credentials = sample_credentials(name)
    stored = vault.vault.store_credentials(
        name, WORKSPACE, actor, credentials, params=parameters(name), verify=verify
    )
    assert not differing(stored, credentials), "the stored fields are not those given"
    return credentials


def step_store(vault: Vault, api: CredentialApiEmulator, name: str) -> str:
    """Step 1; returns what the test says about the entry's verification."""
    since = len(api.seen)
    store(vault, name, "store")
    sent = new_requests(api, name, since)
    if CATALOG[name].verify is None:
        assert sent == [], "no verification is documented, yet a request was sent"
        store(vault, name, "store", verify=False)
        assert vault.vault.verify_credentials(name, WORKSPACE, "store") == "skipped"
        return "stored without verification: the catalog documents no verification request"
    assert [seen.matched for seen in sent] == [True], "one verification request, accepted"
    return "stored verified"


def step_refused(vault: Vault, name: str) -> None:
    """Step 2 (entries with a verification request)."""
    other = sample_credentials(name, "other")
    assert differing(other, sample_credentials(name)) == sorted(secret_names(name))
    with pytest.raises(InvalidCredentials) as refused:
        vault.vault.store_credentials(name, WORKSPACE, "refused", other, params=parameters(name))
    assert refused.value.error == "invalid_credentials"
    assert not any(other[each] in str(refused.value) for each in secret_names(name))
    with pytest.raises(TokenNotFound):
        vault.vault.get_credentials(name, WORKSPACE, "refused")
    assert vault.vault.list_connections(provider=name, actor_id="refused") == []


def step_read(vault: Vault, name: str) -> None:
    """Step 3 (stored unverified: step 1 covers verification)."""
    credentials = store(vault, name, "read", verify=False)
    read = vault.vault.get_credentials(name, WORKSPACE, "read")
    assert not differing(read, credentials), "the fields read are not those stored"
    assert read.kind == RAW[name]["auth"]
    secrets = [credentials[each] for each in secret_names(name)]
    shown = repr(read) + str(read)
    assert not any(secret in shown for secret in secrets), "a secret is shown by repr/str"
    [listed] = vault.vault.list_connections(provider=name, workspace_id=WORKSPACE, actor_id="read")
    assert listed.status == "active" and listed.expires_at is None
    assert dict(listed.params) == {**parameters(name), **derived_params(name, credentials)}
    assert not any(secret in repr(listed) for secret in secrets), "the listing shows a secret"


def step_placed(vault: Vault, api: CredentialApiEmulator, name: str) -> None:
    """Step 4: the request sent, against the raw table's own account of it."""
    spec = CATALOG[name]
    verify = RAW[name].get("verify")
    since = len(api.seen)
    credentials = store(vault, name, "placed")
    if verify is None:
        # No verification request: one placed as an adapter would, with the stored values.
        read = vault.vault.get_credentials(name, WORKSPACE, "placed")
        [listed] = vault.vault.list_connections(provider=name, actor_id="placed")
        routed = CredentialApp(name, api.base_override(name)).applied_to(spec)
        placement = spec.placement(read, listed.params)
        url = routed.url("/", listed.params, read)
        with httpx.Client(timeout=10) as http:
            http.get(url, headers=dict(placement.headers), params=dict(placement.query))
    [seen] = new_requests(api, name, since)
    expected = expected_request(name, credentials, verify["path"] if verify else None)
    secrets = {credentials[each] for each in secret_names(name)}
    problems = placement_problems(seen, expected, secrets)
    assert not problems, f"{name}: {'; '.join(problems)}"
    assert seen.matched


def step_needs_reauth(vault: Vault, api: CredentialApiEmulator, name: str) -> None:
    """Step 5 (entries with a verification request): a 401, then a 403."""
    store(vault, name, "reauth")
    ids = (name, WORKSPACE, "reauth")
    assert vault.vault.verify_credentials(*ids) == "valid"
    assert vault.changes(name, "reauth") == []
    try:
        for status, make_refuse in ((401, api.forget), (403, api.revoke)):
            before = len(vault.changes(name, "reauth"))
            make_refuse(name)
            assert vault.vault.verify_credentials(*ids) == "refused", status
            [listed] = vault.vault.list_connections(provider=name, actor_id="reauth")
            assert listed.status == "needs_reauth", status
            assert listed.last_error is not None and str(status) in listed.last_error
            [event] = vault.changes(name, "reauth")[before:]
            assert (event.status, event.previous_status) == ("needs_reauth", "active"), status
            # Back: the API takes the credential again, and the connection is active.
            accept(api, name)
            assert vault.vault.verify_credentials(*ids) == "valid"
            [listed] = vault.vault.list_connections(provider=name, actor_id="reauth")
            assert listed.status == "active"
    finally:
        accept(api, name)


def step_delete(vault: Vault, name: str) -> None:
    """Step 6 (stored unverified: step 1 covers verification)."""
    store(vault, name, "delete", verify=False)
    assert vault.vault.delete_tokens(name, WORKSPACE, "delete")
    with pytest.raises(TokenNotFound):
        vault.vault.get_credentials(name, WORKSPACE, "delete")
    assert vault.vault.list_connections(provider=name, actor_id="delete") == []


# --- the catalog ------------------------------------------------------------------------------


def test_the_catalog_has_sixty_entries_or_more(record_property: Callable[[str, object], None]):
    kinds = Counter(spec.auth for spec in CATALOG.values())
    unverified = sorted(name for name, spec in CATALOG.items() if spec.verify is None)
    record_property("entries", len(CATALOG))
    record_property("per_kind", dict(sorted(kinds.items())))
    record_property("without_verification", unverified)
    print(f"{len(CATALOG)} entries: {dict(sorted(kinds.items()))}; unverified: {unverified}")
    assert len(CATALOG) >= 60
    assert set(ALL) == set(RAW)


def test_every_sample_row_is_used_and_fits():
    """The :data:`SAMPLES` table stays honest: each row serves some field's pattern, and
    makes values that pattern takes."""
    for start, make in SAMPLES.items():
        patterns = [
            each["pattern"]
            for raw in RAW.values()
            for each in raw.get("fields", [])
            if each.get("pattern", "").startswith(start)
        ]
        assert patterns, f"SAMPLES row {start!r} serves no field"
        value = make(_token("row", start))
        assert any(re.fullmatch(pattern, value) for pattern in patterns), start


# --- the steps, for every entry ----------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_1_stored_verified(sqlite_vault, api, name, record_property):
    record_property("verification", step_store(sqlite_vault, api, name))


@pytest.mark.parametrize("name", VERIFIED)
def test_2_an_unknown_credential_is_refused_and_not_kept(sqlite_vault, api, name):
    step_refused(sqlite_vault, name)


@pytest.mark.parametrize("name", NAMES)
def test_3_read_back_exactly_and_shown_nowhere(sqlite_vault, api, name):
    step_read(sqlite_vault, name)


@pytest.mark.parametrize("name", NAMES)
def test_4_placed_exactly_as_documented(sqlite_vault, api, name):
    step_placed(sqlite_vault, api, name)


@pytest.mark.parametrize("name", VERIFIED)
def test_5_refused_by_the_api_means_needs_reauth(sqlite_vault, api, name):
    step_needs_reauth(sqlite_vault, api, name)


@pytest.mark.parametrize("name", UNVERIFIED)
def test_5_without_a_verification_request_nothing_is_asked(sqlite_vault, api, name):
    store(sqlite_vault, name, "reauth")
    assert sqlite_vault.vault.verify_credentials(name, WORKSPACE, "reauth") == "skipped"
    assert sqlite_vault.changes(name, "reauth") == []


@pytest.mark.parametrize("name", NAMES)
def test_6_deleted(sqlite_vault, api, name):
    step_delete(sqlite_vault, name)


# --- PostgreSQL and Redis ----------------------------------------------------------------------


def test_postgres_and_redis_pass(postgres_url, pg, redis_url, apps, api):
    events: list[ConnectionEvent] = []
    with OAuthTokenCache(
        postgres_url, redis_url, generate_key(), credential_apps=apps, on_event=events.append
    ) as opened:
        vault = Vault(opened, events)
        for name in BACKEND_PASS:
            step_store(vault, api, name)
            step_refused(vault, name)
            step_read(vault, name)
            step_placed(vault, api, name)
            step_needs_reauth(vault, api, name)
            step_delete(vault, name)


# --- logs (last: it reads what every test before it logged) ----------------------------------


def test_no_secret_reaches_a_log_line():
    assert SECRETS and any(LOGS), "run the whole module: this reads what its tests logged"
    text = "\n".join(LOGS)
    leaked = sorted({name for secret, name in SECRETS.items() if secret in text})
    assert not leaked, f"secrets of {leaked} appear in log output"
