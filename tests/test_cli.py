"""The `oauthvault` command line, run in-process and once as a real subprocess."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid

import psycopg
import pytest
from click.testing import CliRunner

from oauthvault import KeyRing, OAuthTokenCache, generate_key
from oauthvault.cli import main
from oauthvault.storage.key_usage import read_key_usage
from oauthvault.storage.location import parse_database_url
from oauthvault.storage.migrations import HEAD_REVISION

from tests.helpers.metadata_server import OAUTH, OPENID, MetadataServer
from tests.helpers.net import free_port
from tests.helpers.oidc_server import local_provider_toml


@pytest.fixture
def cli_env(sqlite_url, key, monkeypatch):
    for name in ("DATABASE_URL", "REDIS_URL", "OAUTH_ENCRYPTION_KEY"):
        monkeypatch.delenv(name, raising=False)
    return {"DATABASE_URL": sqlite_url, "OAUTH_ENCRYPTION_KEY": key}


def run(env, *args):
    return CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)


def test_keygen_prints_a_valid_key():
    result = run({}, "keygen")
    assert result.exit_code == 0
    assert len(KeyRing.from_text(result.output.strip())) == 1


def test_tokens_get_masks_secrets_unless_asked(cli_env, sqlite_url, key):
    with OAuthTokenCache(sqlite_url, encryption_key=key) as vault:
        vault.store_tokens("google", "ws", "u", "ACCESS-SECRET", "REFRESH-SECRET", 600, "mail")
    masked = run(cli_env, "tokens", "get", "google", "ws", "u")
    assert masked.exit_code == 0
    assert "ACCESS-SECRET" not in masked.output
    assert "REFRESH-SECRET" not in masked.output
    assert "access_token: [secure]" in masked.output
    assert "scope: mail" in masked.output
    assert "status: active" in masked.output and "last_error: -" in masked.output
    shown = run(cli_env, "tokens", "get", "google", "ws", "u", "--show-secrets")
    assert "access_token: ACCESS-SECRET" in shown.output
    assert "refresh_token: REFRESH-SECRET" in shown.output


def test_tokens_list_and_delete(cli_env, sqlite_url, key):
    with OAuthTokenCache(sqlite_url, encryption_key=key) as vault:
        vault.store_tokens("google", "ws", "u", "ACCESS-SECRET", None, 600, "mail")
        vault.store_tokens("slack", "ws2", "v", "ACCESS-SECRET-2")
    listed = run(cli_env, "tokens", "list")
    assert listed.output.splitlines()[0].split("\t")[3] == "status"
    assert "google\tws\tu\tactive\t" in listed.output
    assert "slack\tws2\tv\tactive\t-\tno" in listed.output
    assert "SECRET" not in listed.output
    filtered = run(cli_env, "tokens", "list", "--provider", "slack")
    assert "google" not in filtered.output
    assert run(cli_env, "tokens", "delete", "google", "ws", "u").output == "deleted\n"
    missing = run(cli_env, "tokens", "delete", "google", "ws", "u")
    assert missing.exit_code == 2
    assert missing.output == "error: no connection google/ws/u\n"
    gone = run(cli_env, "tokens", "get", "google", "ws", "u")
    assert gone.exit_code == 2 and gone.output.startswith("error: no connection")


def test_tokens_delete_revoke_says_what_the_provider_did(cli_env, sqlite_url, key, tmp_path):
    """A provider without a revocation endpoint: deleted here, and said so."""
    config = tmp_path / "providers.toml"
    config.write_text(
        '[providers.acme]\nauthorization_endpoint = "https://acme.invalid/authorize"\n'
        'token_endpoint = "https://acme.invalid/token"\nclient_id = "id"\nclient_secret = "s"\n'
    )
    with OAuthTokenCache(sqlite_url, encryption_key=key) as vault:
        vault.store_tokens("acme", "ws", "u", "ACCESS-SECRET", None, 600)
    result = run(
        {**cli_env, "OAUTHVAULT_CONFIG": str(config)},
        "tokens",
        "delete",
        "acme",
        "ws",
        "u",
        "--revoke",
    )
    assert result.exit_code == 0, result.output
    assert result.output == "deleted (the provider has no revocation endpoint)\n"
    again = run(
        {**cli_env, "OAUTHVAULT_CONFIG": str(config)},
        "tokens",
        "delete",
        "acme",
        "ws",
        "u",
        "--revoke",
    )
    assert again.exit_code == 2 and again.output.startswith("error: no connection")


def test_worker_ranges_are_checked_and_help_is_complete(cli_env):
    bad = run(cli_env, "worker", "--interval", "-1")
    assert bad.exit_code == 2 and "--interval" in bad.output and "Traceback" not in bad.output
    listing = run(cli_env, "--help").output
    commands = listing.split("Commands:", 1)[1]
    assert "..." not in commands  # every summary fits
    assert "Refresh connections before they expire." in listing
    for group in ("tokens", "providers", "apikey"):
        assert "..." not in run(cli_env, group, "--help").output.split("Commands:", 1)[1]


def test_bad_configuration_is_one_plain_line(cli_env):
    result = run({**cli_env, "OAUTH_ENCRYPTION_KEY": "nope"}, "tokens", "list")
    assert result.exit_code == 2
    assert result.output.startswith("error: OAUTH_ENCRYPTION_KEY:")
    assert "Traceback" not in result.output


@pytest.mark.parametrize("url", ["http://cache:6379", "notaurl", "redis://:hunter2@h:port"])
def test_a_bad_redis_url_is_one_plain_line(cli_env, url):
    listing = run({**cli_env, "REDIS_URL": url}, "tokens", "list")
    assert listing.exit_code == 2
    assert listing.output == (
        "error: REDIS_URL: must be a redis://, rediss:// or unix:// URL (or empty: no cache)\n"
    )
    doctor = run({**cli_env, "REDIS_URL": url}, "doctor")
    assert doctor.exit_code == 1
    assert "FAIL configuration: REDIS_URL: must be a redis://" in doctor.output
    for output in (listing.output, doctor.output):
        assert "Traceback" not in output and "hunter2" not in output


def _closed_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.mark.parametrize("command", [["tokens", "list"], ["migrate"], ["doctor"]])
def test_an_unreachable_postgres_is_one_line_with_its_reason(tmp_path, key, command):
    """The installed command, so that logging is as an operator sees it: no pool warnings,
    the host and port, the OS's reason, quickly, and never the password."""
    url = f"postgresql://vault:hunter2@127.0.0.1:{_closed_port()}/vault"
    result = subprocess.run(
        [sys.executable, "-m", "oauthvault", *command],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
        env={"PATH": "/usr/bin:/bin", "DATABASE_URL": url, "OAUTH_ENCRYPTION_KEY": key},
    )
    output = result.stdout + result.stderr
    assert "WARNING" not in output and "Traceback" not in output and "hunter2" not in output
    failures = [line for line in output.splitlines() if "127.0.0.1" in line and "refused" in line]
    assert len(failures) == 1, output
    if command == ["doctor"]:
        assert result.returncode == 1 and failures[0].startswith("FAIL database: ")
    else:
        assert result.returncode == 2 and output.startswith("error: ") and output.count("\n") == 1
    if command == ["migrate"]:
        assert "failed: OperationalError: connection failed" in output


def test_lifetimes_in_the_service_table_are_checked(tmp_path):
    from oauthvault import ConfigError
    from oauthvault.service.config import load_service_config

    path = tmp_path / "c.toml"
    path.write_text("[service]\nstate_ttl = 300\nlink_ttl = 86400\n")
    config = load_service_config(path, {})
    assert (config.state_ttl, config.link_ttl) == (300, 86400)
    for text in ("state_ttl = 5", "link_ttl = '600'", "state_ttl = true", "link_ttl = 99999999"):
        path.write_text(f"[service]\n{text}\n")
        with pytest.raises(ConfigError) as caught:
            load_service_config(path, {})
        assert "whole number of seconds" in str(caught.value)


def test_bad_ids_are_one_plain_line(cli_env):
    result = run(cli_env, "tokens", "get", "google", "ws", "u" * 300)
    assert result.exit_code == 2
    assert "actor_id: is longer than 255 characters" in result.output


def test_doctor_reports_each_check(cli_env, redis_url):
    healthy = run({**cli_env, "REDIS_URL": redis_url}, "doctor")
    assert healthy.exit_code == 0, healthy.output
    for name in (
        "configuration",
        "key ring",
        "database",
        "key coverage",
        "key usage",
        "decryption",
        "service",
        "providers",
        "redis",
    ):
        assert f"ok   {name}:" in healthy.output
    broken = run({**cli_env, "REDIS_URL": "redis://127.0.0.1:1/0"}, "doctor")
    assert broken.exit_code == 1
    assert "FAIL redis: cannot reach Redis at 127.0.0.1:1" in broken.output
    assert "Connection refused" in broken.output


def test_doctor_warns_past_half_the_key_encryption_limit_and_fails_at_it(cli_env, sqlite_url, key):
    """Failed before issue 26: nothing counted a key's encryptions (random 96-bit nonces
    allow a key a bounded number)."""
    with OAuthTokenCache(sqlite_url, encryption_key=key) as vault:
        vault.store_tokens("google", "ws", "u", "ACCESS", "REFRESH", 600)
    key_id = KeyRing.from_text(key).key_ids[0]
    used = read_key_usage(parse_database_url(sqlite_url))[key_id]
    assert used >= 2  # the access and the refresh token, written when the vault closed
    fine = run(cli_env, "doctor")
    assert fine.exit_code == 0, fine.output
    assert f"ok   key usage: encryptions by key, of {2**30} allowed: {key_id}: {used}" in (
        fine.output
    )
    near = run({**cli_env, "OAUTHVAULT_KEY_ENCRYPTION_LIMIT": str(used + 1)}, "doctor")
    assert near.exit_code == 0, near.output
    warning = next(line for line in near.output.splitlines() if line.startswith("warn"))
    assert warning.startswith(f"warn key usage: key {key_id} made over half of the limit")
    assert "`oauthvault rotate-key`" in warning
    over = run({**cli_env, "OAUTHVAULT_KEY_ENCRYPTION_LIMIT": str(used)}, "doctor")
    assert over.exit_code == 1
    assert f"FAIL key usage: key {key_id} reached the limit of {used} encryptions" in over.output
    assert "`oauthvault rotate-key`" in over.output


def test_doctor_reports_a_broken_provider_config(cli_env, tmp_path):
    config = tmp_path / "bad.toml"
    config.write_text("[providers.nope]\nclient_id = 'x'\n")
    result = run({**cli_env, "OAUTHVAULT_CONFIG": str(config)}, "doctor")
    assert result.exit_code == 1
    assert "FAIL providers:" in result.output
    assert "providers.nope" in result.output
    assert "ok   service:" in result.output


def _doctor_with(cli_env, tmp_path, text):
    config = tmp_path / "providers.toml"
    config.write_text(text)
    return run({**cli_env, "OAUTHVAULT_CONFIG": str(config)}, "doctor")


def _issuer_table(name, issuer, *lines):
    head = [f"[providers.{name}]", f'issuer = "{issuer}"', 'client_id = "i"', 'client_secret = "s"']
    return "\n".join([*head, *lines, ""])


def test_doctor_warns_about_providers_that_cannot_revoke(cli_env, tmp_path):
    with MetadataServer() as plain, MetadataServer() as dot:
        openid = {
            "issuer": plain.url,
            "authorization_endpoint": f"{plain.url}/authorize",
            "token_endpoint": f"{plain.url}/token",
        }
        plain.serve(b"not found", 404)
        plain.route(OPENID, openid)
        dot.serve(b"not found", 404)  # django-oauth-toolkit: revocation in RFC 8414 only
        dot.route(OPENID, {**openid, "issuer": dot.url})
        dot.route(OAUTH, {**openid, "issuer": dot.url, "revocation_endpoint": f"{dot.url}/r"})
        result = _doctor_with(
            cli_env,
            tmp_path,
            _issuer_table("corp", plain.url)
            + _issuer_table("dot", dot.url)
            + _issuer_table("fixed", plain.url, f'revocation_endpoint = "{plain.url}/revoke"')
            + '[providers.microsoft]\nclient_id = "i"\nclient_secret = "s"\n'
            + '[providers.google]\nclient_id = "i"\nclient_secret = "s"\n',
        )
    assert result.exit_code == 0, result.output
    assert "ok   providers: 5 configured" in result.output
    warnings = [line for line in result.output.splitlines() if line.startswith("warn")]
    assert len(warnings) == 2, result.output
    assert warnings[0].startswith("warn revocation: corp cannot revoke (its discovery metadata")
    assert "set providers.corp.revocation_endpoint" in warnings[0]
    assert warnings[1].startswith("warn revocation: microsoft cannot revoke")
    assert "set providers.microsoft.revocation_endpoint" in warnings[1]


def test_doctor_discovers_the_local_provider_which_can_revoke(cli_env, tmp_path, op):
    result = _doctor_with(cli_env, tmp_path, local_provider_toml(op.issuer))
    assert result.exit_code == 0, result.output
    assert "ok   providers: 1 configured: local" in result.output
    assert "warn" not in result.output and "discovery" not in result.output


def test_doctor_fails_a_provider_whose_discovery_fails(cli_env, tmp_path):
    result = _doctor_with(
        cli_env, tmp_path, _issuer_table("corp", f"http://127.0.0.1:{free_port()}")
    )
    assert result.exit_code == 1
    assert "FAIL discovery: corp: temporarily_unavailable" in result.output
    assert "Traceback" not in result.output


def test_doctor_files_service_errors_under_service(cli_env, tmp_path):
    config = tmp_path / "bad.toml"
    config.write_text("[service]\nretrun_urls = []\n")
    result = run({**cli_env, "OAUTHVAULT_CONFIG": str(config)}, "doctor")
    assert result.exit_code == 1
    assert "FAIL service: " in result.output and "service.retrun_urls" in result.output
    assert "ok   providers:" in result.output


def test_doctor_finds_rows_the_key_ring_cannot_read(cli_env, sqlite_url):
    with OAuthTokenCache(sqlite_url, encryption_key=generate_key()) as other:
        other.store_tokens("google", "ws", "u", "token")
    result = run(cli_env, "doctor")
    assert result.exit_code == 1
    assert "FAIL key coverage" in result.output
    assert "FAIL decryption" in result.output


def test_migrate_then_rotate_key_on_postgres(postgres_url):
    name = f"oauthvault_cli_test_{uuid.uuid4().hex[:10]}"  # runs side by side must not share it
    admin_url = postgres_url.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
        admin.execute(f'CREATE DATABASE "{name}"')
    url = postgres_url.rsplit("/", 1)[0] + "/" + name
    old, new = generate_key(), generate_key()
    try:
        migrated = run({"DATABASE_URL": url}, "migrate")
        assert migrated.exit_code == 0, migrated.output
        assert f"schema at revision {HEAD_REVISION}" in migrated.output
        assert run({"DATABASE_URL": url}, "migrate").exit_code == 0  # idempotent
        with OAuthTokenCache(url, encryption_key=old) as vault:
            for index in range(3):
                vault.store_tokens("google", "ws", f"u{index}", "token", expires_in=60)
        rotated = run(
            {"DATABASE_URL": url, "OAUTH_ENCRYPTION_KEY": f"{new},{old}"},
            "rotate-key",
            "--batch-size",
            "2",
        )
        assert rotated.exit_code == 0, rotated.output
        assert "done: 3 rows re-sealed" in rotated.output
        doctor = run({"DATABASE_URL": url, "OAUTH_ENCRYPTION_KEY": new}, "doctor")
        assert "every row is sealed with the newest key" in doctor.output
    finally:
        with psycopg.connect(admin_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_the_installed_command_runs_the_demo(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "oauthvault", "demo"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
        env={"PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 0, result.stderr
    assert "access token round trip ok: True" in result.stdout
    assert "after delete: None" in result.stdout
    assert (tmp_path / "oauthvault.key").exists()
    assert "demo-access-token" not in result.stdout + result.stderr


def test_serve_runs_the_http_service(tmp_path, sqlite_url, key):
    import httpx

    from tests.helpers.processes import start_serve, stop

    port = free_port()
    config = tmp_path / "oauthvault.toml"
    config.write_text("[service]\n")  # no public_url: --port moves the default one
    settings = {"DATABASE_URL": sqlite_url, "OAUTH_ENCRYPTION_KEY": key}
    process = start_serve(port, {**settings, "OAUTHVAULT_CONFIG": str(config)})
    try:
        health = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5)
        assert health.json() == {"status": "ok"}
        httpx.get(
            f"http://127.0.0.1:{port}/oauth/nope/callback",
            params={"code": "SECRET-CODE", "state": "SECRET-STATE"},
        )
    finally:
        log = stop(process)
    assert f"public URL http://127.0.0.1:{port}" in log  # the start-up summary
    assert "0 API key(s)" in log and "no API key is configured" in log
    assert key not in log
    assert "GET /healthz 200" in log  # there is an access log...
    assert "GET /oauth/nope/callback 404" in log
    assert "SECRET" not in log  # ...without query strings


def test_apikey_create_prints_the_key_once_and_its_hash():
    from oauthvault.service.apikeys import hash_api_key

    result = run({}, "apikey", "create", "--name", "backend", "--workspace", "ws_1")
    assert result.exit_code == 0
    key = result.output.split("API key (shown once): ")[1].split()[0]
    assert f'sha256 = "{hash_api_key(key)}"' in result.output
    assert 'workspaces = ["ws_1"]' in result.output


def test_unknown_tables_and_service_keys_are_refused_by_name(tmp_path):
    from oauthvault import ConfigError
    from oauthvault.service.config import load_service_config

    for text, named in (
        ("[servce]\npublic_url = 'http://x'\n", "servce"),
        ("[service]\nretrun_urls = []\n", "service.retrun_urls"),
    ):
        path = tmp_path / "c.toml"
        path.write_text(text)
        with pytest.raises(ConfigError) as caught:
            load_service_config(path, {})
        assert named in str(caught.value)
    path.write_text("[service]\nreturn_urls = ['https://app.example/']\n")
    config = load_service_config(path, {}, default_public_url="http://127.0.0.1:9999")
    assert config.public_url == "http://127.0.0.1:9999"


def test_audit_shows_a_workspace_s_token_reads(cli_env, sqlite_url, key):
    with OAuthTokenCache(sqlite_url, encryption_key=key, audit_caller="cli-test") as vault:
        vault.store_tokens("google", "ws_cli", "u1", "SECRET-ACCESS", expires_in=600)
        vault.get_access_token("google", "ws_cli", "u1")
    table = run(cli_env, "audit", "--workspace", "ws_cli")
    assert table.exit_code == 0, table.output
    lines = table.output.splitlines()
    assert lines[0] == "id\tat\tcaller\tprovider\tactor_id\toutcome\tsource"
    assert lines[1].split("\t")[2:] == ["cli-test", "google", "u1", "served", "-"]
    as_json = run(cli_env, "audit", "--workspace", "ws_cli", "--json", "--since", "2020-01-01")
    assert json.loads(as_json.output)["outcome"] == "served"
    assert "SECRET" not in table.output + as_json.output
    assert run(cli_env, "audit", "--workspace", "ws_none").output == "no entries\n"
    bad = run(cli_env, "audit", "--workspace", "ws\x01")
    assert bad.exit_code == 2 and bad.output.startswith("error: workspace_id:")
