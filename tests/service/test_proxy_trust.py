"""Which client address the service believes (issue 26, item 8): the connecting peer's,
unless ``[service] trusted_proxies`` names that peer. uvicorn's own default believes
``X-Forwarded-For`` from 127.0.0.1, so anything on the host could pick the address the
sign-in throttle and the audit trail key on."""

from __future__ import annotations

import re
import time

import httpx
import pytest

from oauthvault import generate_key
from oauthvault.cli.serve import server_options
from oauthvault.errors import ConfigError
from oauthvault.service.admin_session import generate_admin_credential, hash_admin_credential
from oauthvault.service.config import load_service_settings

from tests.helpers.service_harness import running_environment

CREDENTIAL = generate_admin_credential()
FORGED = {"X-Forwarded-For": "203.0.113.9"}
ADMIN = f'\n[admin]\ncredential_sha256 = "{hash_admin_credential(CREDENTIAL)}"'


def audited_sources(env, workspace_id: str) -> set[str]:
    """The ``source`` of the workspace's audit entries, once the one read was written."""
    deadline = time.monotonic() + 5
    with env.api() as api:
        while True:  # written in batches, a moment later
            entries = api.get("/v1/audit", params={"workspace_id": workspace_id}).json()["entries"]
            if entries or time.monotonic() > deadline:
                return {entry["source"] for entry in entries}
            time.sleep(0.05)


def read_token_with_forged_address(env, workspace_id: str) -> None:
    ids = {"provider": "local", "workspace_id": workspace_id, "actor_id": "erin"}
    with env.api() as api:
        stored = api.put("/v1/connections", json={**ids, "access_token": "proxy-trust-token"})
        assert stored.status_code == 204, stored.text
        read = api.get("/v1/connections/token", params=ids, headers=FORGED)
        assert read.status_code == 200, read.text


def fail_sign_ins(env, headers: dict[str, str], times: int) -> list[int]:
    with httpx.Client(base_url=env.base_url, timeout=10) as client:
        found = re.search(r'name="csrf" value="([^"]+)"', client.get("/admin/login").text)
        assert found is not None
        return [
            client.post(
                "/admin/login", data={"csrf": found[1], "credential": "ova_wrong"}, headers=headers
            ).status_code
            for _ in range(times)
        ]


@pytest.mark.parametrize(
    ("settings", "believed"),
    [("", "127.0.0.1"), ('trusted_proxies = ["127.0.0.1"]', "203.0.113.9")],
    ids=["no-proxy-trusted", "loopback-proxy-trusted"],
)
def test_the_audit_trail_believes_x_forwarded_for_from_trusted_proxies_only(
    tmp_path, postgres_url, _redis_checked, settings, believed
):
    with running_environment(
        tmp_path,
        postgres_url,
        _redis_checked,
        generate_key(),
        auto_approve=True,
        service_settings=settings,
    ) as env:
        workspace_id = f"ws_proxy_{believed.replace('.', '_')}"
        read_token_with_forged_address(env, workspace_id)
        assert audited_sources(env, workspace_id) == {believed}


def test_a_forged_address_neither_escapes_the_throttle_nor_locks_out_another(
    tmp_path, postgres_url, _redis_checked
):
    with running_environment(
        tmp_path,
        postgres_url,
        _redis_checked,
        generate_key(),
        auto_approve=True,
        service_settings=ADMIN,
    ) as env:
        # Each failure claims to come from elsewhere: all of them still count for the peer.
        assert fail_sign_ins(env, FORGED, 6) == [401] * 5 + [429]
        assert fail_sign_ins(env, {}, 1) == [429]


def test_a_trusted_proxy_gives_the_throttle_the_forwarded_address(
    tmp_path, postgres_url, _redis_checked
):
    with running_environment(
        tmp_path,
        postgres_url,
        _redis_checked,
        generate_key(),
        auto_approve=True,
        service_settings='trusted_proxies = ["127.0.0.1"]' + ADMIN,
    ) as env:
        assert fail_sign_ins(env, FORGED, 6) == [401] * 5 + [429]
        assert fail_sign_ins(env, {}, 1) == [401]  # the proxy itself is not locked out


def test_trusted_proxies_take_addresses_and_networks_only(tmp_path):
    path = tmp_path / "oauthvault.toml"
    path.write_text('[service]\ntrusted_proxies = ["10.0.0.5", "10.1.0.0/16", "::1"]\n')
    config = load_service_settings(path, {})
    assert config.trusted_proxies == ("10.0.0.5", "10.1.0.0/16", "::1")
    assert server_options(config.trusted_proxies)["forwarded_allow_ips"] == list(
        config.trusted_proxies
    )
    assert server_options(())["proxy_headers"] is False
    path.write_text('[service]\ntrusted_proxies = ["*"]\n')
    with pytest.raises(ConfigError, match="trusted_proxies"):
        load_service_settings(path, {})


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        ("", {"proxy_headers": False}),
        (
            'trusted_proxies = ["10.0.0.5"]',
            {"proxy_headers": True, "forwarded_allow_ips": ["10.0.0.5"]},
        ),
    ],
)
def test_serve_runs_uvicorn_with_the_proxy_trust_configured(
    tmp_path, sqlite_url, monkeypatch, settings, expected
):
    import uvicorn
    from click.testing import CliRunner

    from oauthvault.cli import main

    monkeypatch.delenv("REDIS_URL", raising=False)
    ran: dict[str, object] = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **options: ran.update(options))
    path = tmp_path / "oauthvault.toml"
    path.write_text(f"[service]\n{settings}\n")
    env = {
        "OAUTHVAULT_CONFIG": str(path),
        "DATABASE_URL": sqlite_url,
        "OAUTH_ENCRYPTION_KEY": generate_key(),
        "FORWARDED_ALLOW_IPS": "*",  # uvicorn's own variable: never consulted
    }
    result = CliRunner().invoke(main, ["serve"], env=env, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert {key: ran.get(key) for key in expected} == expected
