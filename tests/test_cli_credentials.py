"""``oauthvault credentials store/get/verify``, ``oauthvault import`` and the auth kinds of
``providers list``, run in-process against SQLite and PostgreSQL and the credential API
emulator: secrets come from standard input only, are printed by ``credentials get`` only,
and an import stores every line or none."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import click
import pytest
from click.testing import CliRunner, Result

from oauthvault import InvalidInput, OAuthTokenCache, UnknownProvider
from oauthvault.cli import main
from oauthvault.providers import load_catalog
from oauthvault.providers.credentials import load_credential_catalog

from tests.helpers.credential_api import CredentialApiEmulator
from tests.helpers.net import free_port

GOOD = "sk-" + "G" * 40
WRONG = "sk-" + "W" * 40
ZD_EMAIL = "agent@example.com"
ZD_TOKEN = "ZD-TOKEN-SECRET-1234"
LINEAR = "lin_api_SECRET_" + "L" * 20
ACCESS = "ACCESS-TOKEN-SECRET"
REFRESH = "REFRESH-TOKEN-SECRET"
SECRETS = (GOOD, WRONG, ZD_TOKEN, LINEAR, ACCESS, REFRESH)
OVERRIDDEN = ("openai", "zendesk-api-token", "linear-api-key")


@pytest.fixture(scope="module")
def api() -> Iterator[CredentialApiEmulator]:
    emulator = CredentialApiEmulator(load_credential_catalog()).start()
    emulator.accept("openai", {"api_key": GOOD})
    emulator.accept(
        "zendesk-api-token", {"email": ZD_EMAIL, "api_token": ZD_TOKEN}, {"subdomain": "acme"}
    )
    yield emulator
    emulator.stop()


def _config(tmp_path, overrides: dict[str, str]) -> str:
    path = tmp_path / "oauthvault.toml"
    path.write_text(
        "".join(
            f'[credentials.{name}]\napi_base_url = "{url}"\n' for name, url in overrides.items()
        )
    )
    return str(path)


@pytest.fixture
def env(database_url, key, tmp_path, api, monkeypatch) -> dict[str, str]:
    for name in ("DATABASE_URL", "REDIS_URL", "OAUTH_ENCRYPTION_KEY", "OAUTHVAULT_CONFIG"):
        monkeypatch.delenv(name, raising=False)
    config = _config(tmp_path, {name: api.base_override(name) for name in OVERRIDDEN})
    return {"DATABASE_URL": database_url, "OAUTH_ENCRYPTION_KEY": key, "OAUTHVAULT_CONFIG": config}


@pytest.fixture
def sqlite_env(sqlite_url, key, tmp_path, api, monkeypatch) -> dict[str, str]:
    for name in ("DATABASE_URL", "REDIS_URL", "OAUTH_ENCRYPTION_KEY", "OAUTHVAULT_CONFIG"):
        monkeypatch.delenv(name, raising=False)
    config = _config(tmp_path, {name: api.base_override(name) for name in OVERRIDDEN})
    return {"DATABASE_URL": sqlite_url, "OAUTH_ENCRYPTION_KEY": key, "OAUTHVAULT_CONFIG": config}


def run(env: dict[str, str], *args: str, input: str | bytes | None = None) -> Result:
    return CliRunner().invoke(main, list(args), env=env, input=input, catch_exceptions=False)


def vault_of(env: dict[str, str]) -> OAuthTokenCache:
    return OAuthTokenCache(env["DATABASE_URL"], encryption_key=env["OAUTH_ENCRYPTION_KEY"])


def stored_ids(env: dict[str, str]) -> set[tuple[str, str, str]]:
    with vault_of(env) as vault:
        return {(r.provider, r.workspace_id, r.actor_id) for r in vault.list_connections()}


def assert_no_secret(result: Result, *allowed: str) -> None:
    shown = result.stdout + result.stderr
    for secret in SECRETS:
        if secret not in allowed:
            assert secret not in shown, secret


# --- credentials store / get / verify ------------------------------------------------------


def test_store_reads_json_from_stdin_then_get_and_verify(env):
    stored = run(
        env, "credentials", "store", "openai", "ws", "u1", input=json.dumps({"api_key": GOOD})
    )
    assert stored.exit_code == 0, stored.output
    assert stored.stdout.splitlines() == [
        "stored openai/ws/u1",
        "kind: api_key",
        "fields: api_key",
        "params: -",
        "verified: yes",
    ]
    assert_no_secret(stored)
    read = run(env, "credentials", "get", "openai", "ws", "u1")
    assert read.exit_code == 0, read.output
    assert f"api_key: {GOOD}" in read.stdout and "kind: api_key" in read.stdout
    assert "status: active" in read.stdout
    as_json = json.loads(run(env, "credentials", "get", "openai", "ws", "u1", "--json").stdout)
    assert as_json == {
        "provider": "openai",
        "workspace_id": "ws",
        "actor_id": "u1",
        "kind": "api_key",
        "credentials": {"api_key": GOOD},
    }
    verified = run(env, "credentials", "verify", "openai", "ws", "u1")
    assert verified.exit_code == 0 and verified.stdout.startswith("valid")
    trail = run(env, "audit", "--workspace", "ws", "--json")
    entries = [json.loads(line) for line in trail.stdout.splitlines()]
    assert len(entries) == 2 and {e["caller"] for e in entries} == {"cli"}
    assert all(e["outcome"] == "served" and "@" in e["source"] for e in entries)


def test_store_with_params_and_the_output_of_get_json_imports_back(sqlite_env):
    fields = json.dumps({"email": ZD_EMAIL, "api_token": ZD_TOKEN})
    stored = run(
        sqlite_env,
        "credentials",
        "store",
        "zendesk-api-token",
        "ws",
        "u1",
        "--param",
        "subdomain=acme",
        input=fields,
    )
    assert stored.exit_code == 0, stored.output
    assert "kind: basic" in stored.stdout and "fields: api_token, email" in stored.stdout
    assert "params: subdomain=acme" in stored.stdout
    assert_no_secret(stored)
    line = run(sqlite_env, "credentials", "get", "zendesk-api-token", "ws", "u1", "--json").stdout
    assert json.loads(line)["params"] == {"subdomain": "acme"}
    moved = line.replace('"u1"', '"u2"')
    imported = run(sqlite_env, "import", input=moved)
    assert imported.exit_code == 0, imported.output
    with vault_of(sqlite_env) as vault:
        assert vault.get_credentials("zendesk-api-token", "ws", "u2")["api_token"] == ZD_TOKEN


def test_store_asks_for_each_field_at_a_terminal(sqlite_env, monkeypatch):
    from oauthvault.cli import stored_credentials

    monkeypatch.setattr(stored_credentials, "stdin_is_terminal", lambda: True)
    result = run(
        sqlite_env,
        "credentials",
        "store",
        "zendesk-api-token",
        "ws",
        "u1",
        input=f"{ZD_EMAIL}\n{ZD_TOKEN}\nacme\n",
    )
    assert result.exit_code == 0, result.output
    assert "verified: yes" in result.stdout
    assert ZD_TOKEN not in result.output  # asked for without echo
    assert "Email" in result.stderr or "email" in result.stderr.lower()
    with vault_of(sqlite_env) as vault:
        read = vault.get_credentials("zendesk-api-token", "ws", "u1")
        assert dict(read) == {"email": ZD_EMAIL, "api_token": ZD_TOKEN}
        [row] = vault.list_connections(provider="zendesk-api-token")
        assert dict(row.params) == {"subdomain": "acme"}


def test_a_refused_key_exits_non_zero_without_showing_it(env):
    refused = run(
        env, "credentials", "store", "openai", "ws", "u1", input=json.dumps({"api_key": WRONG})
    )
    assert refused.exit_code == 2
    assert refused.stderr.startswith("error: invalid_credentials: OpenAI refused the credential")
    assert len(refused.stderr.splitlines()) == 1 and "Traceback" not in refused.output
    assert_no_secret(refused)
    assert stored_ids(env) == set()
    missing = run(env, "credentials", "get", "openai", "ws", "u1")
    assert missing.exit_code == 2 and missing.stderr.startswith("error: nothing is stored")


def test_verify_says_refused_and_exits_1(sqlite_env):
    stored = run(
        sqlite_env,
        "credentials",
        "store",
        "openai",
        "ws",
        "u1",
        "--no-verify",
        input=json.dumps({"api_key": WRONG}),
    )
    assert stored.exit_code == 0 and "verified: no (--no-verify)" in stored.stdout
    verdict = run(sqlite_env, "credentials", "verify", "openai", "ws", "u1")
    assert verdict.exit_code == 1 and verdict.stdout.startswith("refused")
    with vault_of(sqlite_env) as vault:
        assert vault.list_connections()[0].status == "needs_reauth"
    skipped = run(
        sqlite_env,
        "credentials",
        "store",
        "linear-api-key",
        "ws",
        "u1",
        input=json.dumps({"api_key": LINEAR}),
    )
    assert "verified: no (the provider documents no verification request)" in skipped.stdout
    again = run(sqlite_env, "credentials", "verify", "linear-api-key", "ws", "u1")
    assert again.exit_code == 0 and again.stdout.startswith("skipped")


@pytest.mark.parametrize(
    ("provider", "stdin", "said"),
    [
        ("nope", '{"api_key": "x"}', "error: 'nope' is not in the credential catalog"),
        ("google", '{"api_key": "x"}', "error: 'google' is an OAuth provider"),
        ("openai", json.dumps({"api_key": "not-a-key"}), "error: credentials.api_key: is not"),
        ("openai", json.dumps({"api_key": GOOD, "other": "x"}), "error: credentials.other: is not"),
        ("openai", json.dumps({"api_key": 5}), "error: credentials.api_key: must be a string"),
        ("openai", "", "error: no credential on standard input"),
        ("openai", "{" + GOOD, "error: standard input is not JSON"),
        ("openai", json.dumps([GOOD]), "error: standard input must be a JSON object"),
        (
            "zendesk-api-token",
            json.dumps({"email": ZD_EMAIL, "api_token": ZD_TOKEN}),
            "error: params.subdomain: is required",
        ),
    ],
)
def test_store_errors_are_one_plain_line(sqlite_env, provider, stdin, said):
    result = run(sqlite_env, "credentials", "store", provider, "ws", "u1", input=stdin)
    assert result.exit_code == 2
    assert result.stderr.startswith(said), result.stderr
    assert len(result.stderr.splitlines()) == 1 and "Traceback" not in result.output
    assert_no_secret(result)
    assert stored_ids(sqlite_env) == set()


def test_an_unreachable_provider_is_one_plain_line(sqlite_env, tmp_path):
    closed = f"http://127.0.0.1:{free_port()}"
    config = _config(tmp_path, {"openai": closed})
    result = run(
        {**sqlite_env, "OAUTHVAULT_CONFIG": config},
        "credentials",
        "store",
        "openai",
        "ws",
        "u1",
        input=json.dumps({"api_key": GOOD}),
    )
    assert result.exit_code == 2
    assert result.stderr.startswith("error: temporarily_unavailable: OpenAI could not verify")
    assert_no_secret(result)
    assert stored_ids(sqlite_env) == set()


def test_no_argument_or_option_of_the_new_commands_takes_a_secret():
    from oauthvault.cli.importing import import_connections
    from oauthvault.cli.stored_credentials import credentials

    expected = {
        "store": {"provider", "workspace_id", "actor_id", "params", "verify"},
        "get": {"provider", "workspace_id", "actor_id", "as_json"},
        "verify": {"provider", "workspace_id", "actor_id"},
    }
    assert set(credentials.commands) == set(expected)
    commands: list[tuple[str, click.Command]] = [
        (name, credentials.commands[name]) for name in expected
    ]
    commands.append(("import", import_connections))
    expected["import"] = {"verify", "dry_run"}
    for name, command in commands:
        params = [p for p in command.params if p.name != "help"]
        assert {p.name for p in params} == expected[name], name
        for param in params:
            if isinstance(param, click.Option):
                assert param.prompt is None and not param.hide_input, (name, param.name)
            words = " ".join([*param.opts, *param.secondary_opts]).lower()
            for word in ("secret", "key", "token", "password"):
                assert word not in words, (name, param.name)
        takes_text = [
            p.name
            for p in params
            if isinstance(p, click.Option) and not p.is_flag and p.name != "params"
        ]
        assert takes_text == [], name  # only --param NAME=VALUE takes a value


def test_help_summaries_fit():
    commands = run({}, "--help").output.split("Commands:", 1)[1]
    assert "credentials  Store, read and verify" in commands and "import  " in commands
    assert "..." not in commands
    assert "..." not in run({}, "credentials", "--help").output.split("Commands:", 1)[1]


# --- import --------------------------------------------------------------------------------


def _line(**fields: object) -> str:
    return json.dumps(fields)


def _good_lines() -> list[str]:
    soon = (datetime.now(UTC) + timedelta(hours=2)).isoformat()
    return [
        _line(provider="openai", workspace_id="ws", actor_id="a", credentials={"api_key": GOOD}),
        "",
        _line(
            provider="zendesk-api-token",
            workspace_id="ws",
            actor_id="a",
            credentials={"email": ZD_EMAIL, "api_token": ZD_TOKEN},
            params={"subdomain": "acme"},
        ),
        _line(
            provider="linear-api-key",
            workspace_id="ws",
            actor_id="a",
            credentials={"api_key": LINEAR},
            kind="api_key",
        ),
        _line(
            provider="google",
            workspace_id="ws",
            actor_id="a",
            access_token=ACCESS,
            refresh_token=REFRESH,
            expires_at=soon,
            scope="openid email",
        ),
        "   ",
        _line(
            provider="zendesk",
            workspace_id="ws",
            actor_id="b",
            access_token=ACCESS + "-2",
            expires_in=600,
            params={"subdomain": "acme"},
        ),
    ]


def test_import_stores_every_kind_and_sums_up(env):
    result = run(env, "import", input="\n".join(_good_lines()) + "\n")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        "lines read: 7",
        "skipped: 2 blank",
        "bad: 0",
        "verified: 3 credential(s): 2 valid, 0 refused, 0 unavailable, "
        "1 skipped (no verification request)",
        "stored: 5 (api_key 2, basic 1, oauth2 2)",
    ]
    assert result.stderr == ""
    assert_no_secret(result)
    with vault_of(env) as vault:
        assert vault.get_credentials("openai", "ws", "a")["api_key"] == GOOD
        assert vault.get_credentials("linear-api-key", "ws", "a")["api_key"] == LINEAR
        assert vault.get_credentials("zendesk-api-token", "ws", "a")["api_token"] == ZD_TOKEN
        google = vault.get_tokens("google", "ws", "a")
        assert google is not None and google.refresh_token == REFRESH
        assert google.scope == "openid email" and google.expires_at is not None
        left = (google.expires_at - datetime.now(UTC)).total_seconds()
        assert 7100 < left <= 7200
        zendesk = vault.get_tokens("zendesk", "ws", "b")
        assert zendesk is not None and dict(zendesk.params) == {"subdomain": "acme"}


BAD_LINES = {
    "not JSON": ("{" + GOOD, "is not JSON"),
    "not an object": (json.dumps([GOOD]), "must be a JSON object"),
    "unknown provider": (
        _line(provider="nope", workspace_id="ws", actor_id="x", credentials={"api_key": GOOD}),
        "provider 'nope' is not in the credential catalog",
    ),
    "unknown token provider": (
        _line(provider="nope", workspace_id="ws", actor_id="x", access_token=ACCESS),
        "provider 'nope' is in neither catalog",
    ),
    "bad field": (
        _line(provider="openai", workspace_id="ws", actor_id="x", credentials={"api_key": "x"}),
        "credentials.api_key: is not a valid API key",
    ),
    "unknown field": (
        _line(
            provider="openai",
            workspace_id="ws",
            actor_id="x",
            credentials={"api_key": GOOD, "org": "o"},
        ),
        "credentials.org: is not a field of openai",
    ),
    "missing id": (
        _line(provider="openai", workspace_id="ws", credentials={"api_key": GOOD}),
        "actor_id is missing",
    ),
    "empty id": (
        _line(provider="openai", workspace_id="", actor_id="x", credentials={"api_key": GOOD}),
        "workspace_id: must not be empty",
    ),
    "missing param": (
        _line(
            provider="zendesk-api-token",
            workspace_id="ws",
            actor_id="x",
            credentials={"email": ZD_EMAIL, "api_token": ZD_TOKEN},
        ),
        "params.subdomain: is required",
    ),
    "tokens for a credential provider": (
        _line(provider="openai", workspace_id="ws", actor_id="x", access_token=GOOD),
        "'openai' takes credentials",
    ),
    "credentials for an OAuth provider": (
        _line(provider="google", workspace_id="ws", actor_id="x", credentials={"api_key": GOOD}),
        "'google' is an OAuth provider",
    ),
    "both kinds": (
        _line(
            provider="openai",
            workspace_id="ws",
            actor_id="x",
            credentials={"api_key": GOOD},
            access_token=ACCESS,
        ),
        "has both credentials and access_token",
    ),
    "neither kind": (_line(provider="google", workspace_id="ws", actor_id="x"), "needs"),
    "unknown key": (
        _line(provider="google", workspace_id="ws", actor_id="x", access_token=ACCESS, kind="x"),
        "'kind' is not a key of a token line",
    ),
    "wrong kind": (
        _line(
            provider="openai",
            workspace_id="ws",
            actor_id="x",
            credentials={"api_key": GOOD},
            kind="basic",
        ),
        "kind: openai takes api_key credentials",
    ),
    "bad expiry": (
        _line(
            provider="google",
            workspace_id="ws",
            actor_id="x",
            access_token=ACCESS,
            expires_at="2030-01-01T00:00:00",
        ),
        "expires_at: must carry its offset",
    ),
    "negative expiry": (
        _line(
            provider="google", workspace_id="ws", actor_id="x", access_token=ACCESS, expires_in=-1
        ),
        "expires_in: must not be negative",
    ),
    "same connection twice": (
        _line(provider="openai", workspace_id="ws", actor_id="a", credentials={"api_key": GOOD}),
        "is the same connection as line 1",
    ),
    "not UTF-8": (b"\xff\xfe{}", "is not UTF-8"),
    "nested too deep": ("[" * 100_000 + "]" * 100_000, "too deep"),
    "too long a number": ('{"provider": ' + "9" * 5000 + "}", "too long a number"),
}


@pytest.mark.parametrize("case", sorted(BAD_LINES))
def test_one_bad_line_stores_nothing_at_all(env, case):
    bad, said = BAD_LINES[case]
    good = [line for line in _good_lines() if line.strip()]
    lines = [
        good[0].encode(),
        bad if isinstance(bad, bytes) else bad.encode(),
        *(g.encode() for g in good[1:]),
    ]
    result = run(env, "import", "--no-verify", input=b"\n".join(lines) + b"\n")
    assert result.exit_code == 1, result.output
    assert result.stderr.splitlines() == [
        f"line 2: {result.stderr.splitlines()[0].split(': ', 1)[1]}",
        "error: 1 bad line(s): nothing stored",
    ]
    assert said in result.stderr, result.stderr
    assert "stored: 0" in result.stdout and "bad: 1" in result.stdout
    assert_no_secret(result)
    assert stored_ids(env) == set()


def test_every_bad_line_is_reported_by_number(sqlite_env):
    lines = ["{", "", json.dumps({"provider": "google"}), _good_lines()[0], "[]"]
    result = run(sqlite_env, "import", "--no-verify", input="\n".join(lines) + "\n")
    assert result.exit_code == 1
    numbers = [line.split(":")[0] for line in result.stderr.splitlines()[:-1]]
    assert numbers == ["line 1", "line 3", "line 5"]
    assert "lines read: 5" in result.stdout and "bad: 3" in result.stdout
    assert stored_ids(sqlite_env) == set()


def test_a_refused_credential_with_verify_stores_nothing(env, api):
    lines = [
        *_good_lines(),
        _line(provider="openai", workspace_id="ws", actor_id="z", credentials={"api_key": WRONG}),
    ]
    result = run(env, "import", "--verify", input="\n".join(lines) + "\n")
    assert result.exit_code == 1, result.output
    assert result.stderr.splitlines() == [
        "line 8: refused by openai (the provider answered 401)",
        "error: 1 credential(s) refused or not verifiable: nothing stored "
        "(--no-verify stores without asking)",
    ]
    assert "1 refused" in result.stdout and "stored: 0" in result.stdout
    assert_no_secret(result)
    assert stored_ids(env) == set()
    unverified = run(env, "import", "--no-verify", input="\n".join(lines) + "\n")
    assert unverified.exit_code == 0, unverified.output
    assert "stored: 6 (api_key 3, basic 1, oauth2 2)" in unverified.stdout
    assert len(stored_ids(env)) == 6


def test_an_unreachable_provider_with_verify_stores_nothing(sqlite_env, tmp_path):
    config = _config(tmp_path, {"openai": f"http://127.0.0.1:{free_port()}"})
    result = run(
        {**sqlite_env, "OAUTHVAULT_CONFIG": config}, "import", input=_good_lines()[0] + "\n"
    )
    assert result.exit_code == 1
    assert result.stderr.startswith("line 1: could not be verified (no answer")
    assert stored_ids(sqlite_env) == set()


def test_dry_run_checks_and_verifies_but_stores_nothing(env):
    result = run(env, "import", "--dry-run", input="\n".join(_good_lines()) + "\n")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[-1] == (
        "stored: 0 (dry run) (would store 5: api_key 2, basic 1, oauth2 2)"
    )
    assert "2 valid" in result.stdout
    assert stored_ids(env) == set()
    bad = run(env, "import", "--dry-run", input="{\n")
    assert bad.exit_code == 1 and stored_ids(env) == set()


def test_thousands_of_lines_and_an_over_long_line(sqlite_env):
    count = 3000
    lines = [
        _line(
            provider="google",
            workspace_id=f"ws{index % 7}",
            actor_id=f"u{index}",
            access_token=f"{ACCESS}-{index}",
            expires_in=3600,
        )
        for index in range(count)
    ]
    result = run(sqlite_env, "import", input="\n".join(lines))  # no final newline: fine
    assert result.exit_code == 0, result.output
    assert f"stored: {count} (oauth2 {count})" in result.stdout
    assert_no_secret(result)
    with vault_of(sqlite_env) as vault:
        assert len(vault.list_connections(limit=100_000)) == count
        token = vault.get_tokens("google", f"ws{1500 % 7}", "u1500")
        assert token is not None and token.access_token == f"{ACCESS}-1500"
    huge = _line(provider="google", workspace_id="ws", actor_id="big", access_token="A" * (1 << 20))
    refused = run(sqlite_env, "import", input="\n".join([lines[0], huge, lines[1]]) + "\n")
    assert refused.exit_code == 1
    assert refused.stderr.splitlines()[0] == "line 2: is longer than 1048576 bytes"
    assert "lines read: 3" in refused.stdout


# --- providers list ------------------------------------------------------------------------


def test_providers_list_shows_every_entry_s_auth():
    result = run({}, "providers", "list", "--json")
    assert result.exit_code == 0
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    oauth, credential = load_catalog(), load_credential_catalog()
    assert len(rows) == len(oauth) + len(credential)
    assert [row["name"] for row in rows] == sorted(row["name"] for row in rows)
    for row in rows:
        if row["name"] in oauth:
            assert row["auth"] == "oauth2"
            assert row["auth_style"].startswith("authorization_code")
        else:
            assert row["auth"] == credential[row["name"]].auth
            assert [f["name"] for f in row["fields"]] == [
                f.name for f in credential[row["name"]].fields
            ]
    openai = next(row for row in rows if row["name"] == "openai")
    assert openai["auth"] == "api_key" and openai["verifies"] is True
    table = run({}, "providers", "list").stdout.splitlines()
    assert len(table) == len(rows)
    google = next(line for line in table if line.startswith("google\t"))
    assert google == (
        "google\tGoogle\tauthorization_code+pkce/client_secret_post\trefresh=yes\t"
        "revoke=yes\tparams=-\tauth=oauth2"
    )
    zendesk = next(line for line in table if line.startswith("zendesk-api-token\t"))
    assert zendesk.endswith("\tparams=subdomain\tauth=basic")
    shown = run({}, "providers", "show", "zendesk-api-token")
    assert shown.exit_code == 0
    assert "auth: basic" in shown.output and "subdomain: Zendesk subdomain" in shown.output
    assert "api_token: API token, secret, required" in shown.output


# --- the vault's check and verify helpers the import uses ------------------------------------


def test_the_vault_checks_and_verifies_without_writing(sqlite_url, key, api):
    from oauthvault.providers.credential_apps import CredentialApp

    apps = {"openai": CredentialApp("openai", api.base_override("openai"))}
    with OAuthTokenCache(sqlite_url, encryption_key=key, credential_apps=apps) as vault:
        fields = vault.check_credentials("openai", "ws", "u", {"api_key": GOOD})
        assert fields.kind == "api_key"
        with pytest.raises(InvalidInput) as bad:
            vault.check_credentials("openai", "ws", "u", {"api_key": "x"})
        assert bad.value.argument == "credentials.api_key"
        with pytest.raises(UnknownProvider):
            vault.check_credentials("nope", "ws", "u", {"api_key": GOOD})
        with pytest.raises(InvalidInput) as bad_id:
            vault.check_credentials("openai", "", "u", {"api_key": GOOD})
        assert bad_id.value.argument == "workspace_id"
        vault.check_tokens("google", "ws", "u", ACCESS, REFRESH, 60, "email")
        with pytest.raises(InvalidInput) as bad_expiry:
            vault.check_tokens("google", "ws", "u", ACCESS, expires_in=-5)
        assert bad_expiry.value.argument == "expires_in"
        with pytest.raises(InvalidInput) as bad_param:
            vault.check_tokens("zendesk", "ws", "u", ACCESS, params={"subdomain": "a b"})
        assert bad_param.value.argument == "params.subdomain"
        assert vault.verify_new_credentials("openai", {"api_key": GOOD}).outcome == "valid"
        refused = vault.verify_new_credentials("openai", {"api_key": WRONG})
        assert refused.outcome == "refused" and WRONG not in repr(refused)
        skipped = vault.verify_new_credentials("linear-api-key", {"api_key": LINEAR})
        assert skipped.outcome == "skipped"
        assert vault.list_connections() == []


def test_a_write_failure_midway_names_the_line_and_what_was_stored(sqlite_env, monkeypatch):
    from oauthvault import StorageUnavailable

    original = OAuthTokenCache.store_tokens
    calls = []

    def failing(self, *args, **kwargs):
        calls.append(args[:3])
        if len(calls) == 3:
            raise StorageUnavailable("the database went away")
        return original(self, *args, **kwargs)

    monkeypatch.setattr(OAuthTokenCache, "store_tokens", failing)
    lines = [
        _line(provider="google", workspace_id="ws", actor_id=f"u{i}", access_token=ACCESS)
        for i in range(5)
    ]
    result = run(sqlite_env, "import", input="\n".join(lines) + "\n")
    assert result.exit_code == 2
    assert result.stderr.startswith(
        "error: line 3 could not be stored (the database went away); the 2 before it were"
    )
    assert "stored: 2 (oauth2 2)" in result.stdout
    assert_no_secret(result)
    monkeypatch.undo()
    assert stored_ids(sqlite_env) == {("google", "ws", "u0"), ("google", "ws", "u1")}
    again = run(sqlite_env, "import", input="\n".join(lines) + "\n")
    assert again.exit_code == 0 and "stored: 5 (oauth2 5)" in again.stdout


def test_a_real_process_reads_standard_input(sqlite_url, key, tmp_path):
    import subprocess
    import sys

    line = _line(provider="google", workspace_id="ws", actor_id="p", access_token=ACCESS)
    settings = {"PATH": "/usr/bin:/bin", "DATABASE_URL": sqlite_url, "OAUTH_ENCRYPTION_KEY": key}
    done = subprocess.run(
        [sys.executable, "-m", "oauthvault", "import"],
        input=line + "\n",
        capture_output=True,
        text=True,
        check=False,
        cwd=tmp_path,
        env={**settings, "PYTHONPATH": ":".join(sys.path)},
    )
    assert done.returncode == 0, done.stderr
    assert "stored: 1 (oauth2 1)" in done.stdout and ACCESS not in done.stdout + done.stderr
    stored = subprocess.run(
        [sys.executable, "-m", "oauthvault", "credentials", "store", "linear-api-key", "ws", "p"],
        input=json.dumps({"api_key": LINEAR}),
        capture_output=True,
        text=True,
        check=False,
        cwd=tmp_path,
        env={**settings, "PYTHONPATH": ":".join(sys.path)},
    )
    assert stored.returncode == 0, stored.stderr
    assert "kind: api_key" in stored.stdout and LINEAR not in stored.stdout + stored.stderr
