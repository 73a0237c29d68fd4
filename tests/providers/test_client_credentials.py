"""Client-credentials connections (RFC 6749 §4.4): the app's own client or a customer's,
through the service, the library and the CLI, against the provider emulator.

A custom provider (``acme-m2m``: not in the catalog, so any grant is allowed) and every
catalog provider that documents the grant (``client_credentials = true``) are covered.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Iterator

import httpx
import pytest
from click.testing import CliRunner

from oauthvault import OAuthTokenCache
from oauthvault.cli import main
from oauthvault.providers import load_catalog
from oauthvault.service.apikeys import generate_api_key, hash_api_key

from tests.helpers.emulated_service import EmulatedService, emulated_service
from tests.helpers.emulations import EMULATIONS, Emulation
from tests.providers.test_conformance import (
    Stack,
    connection,
    delete,
    get_token,
    refresh,
    refresh_ok,
    token_ok,
)

CUSTOM = dataclasses.replace(
    load_catalog()["google"],
    name="acme-m2m",
    display_name="Acme machine-to-machine",
    client_credentials=True,
    extra_authorize_params={},
    default_scopes=(),
)
CATALOG_CC = sorted(name for name, spec in load_catalog().items() if spec.client_credentials)
EMULATED = {
    "acme-m2m": CUSTOM,
    "google": load_catalog()["google"],  # documents no client_credentials grant
    **{name: load_catalog()[name] for name in CATALOG_CC},
}
CUSTOMER_ID, CUSTOMER_SECRET = "customer-client-7", "customer-secret-s3cr3t"
#: Keys for one workspace: a plain one, and one allowed the app's own client.
TENANT_KEY, TENANT_APP_KEY = generate_api_key(), generate_api_key()
TENANT_KEYS = (
    f'[[api_keys]]\nname = "tenant"\nsha256 = "{hash_api_key(TENANT_KEY)}"\n'
    'workspaces = ["ws-tenant"]\n\n'
    f'[[api_keys]]\nname = "tenant-app"\nsha256 = "{hash_api_key(TENANT_APP_KEY)}"\n'
    'workspaces = ["ws-tenant-app"]\napp_client_credentials = true\n'
)


CCStack = EmulatedService


def link_params_of(name: str) -> dict[str, str]:
    emulation = EMULATIONS.get(name)
    return dict(emulation.link_params) if emulation else {}


@pytest.fixture(scope="module")
def stack(postgres_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[CCStack]:
    emulations = {**EMULATIONS, "acme-m2m": Emulation(about="A custom M2M API.")}
    with emulated_service(
        EMULATED,
        {name: emulations[name] for name in EMULATED},
        database_url=postgres_url,
        directory=tmp_path_factory.mktemp("cc"),
        # A custom provider has no catalog entry: its table names its endpoints itself.
        extra_keys={
            "acme-m2m": 'display_name = "Acme"\ntoken_endpoint_auth_method = "client_secret_post"\n'
            'scopes = ["read", "write"]'
        },
        extra_toml=TENANT_KEYS,
    ) as service:
        yield service


def create(stack: Stack, name: str, workspace: str, **extra: object) -> httpx.Response:
    body = {"provider": name, "workspace_id": workspace, "actor_id": "svc", **extra}
    return stack.api.post("/v1/client-credentials", json=body)


@pytest.mark.parametrize("name", ["acme-m2m", *CATALOG_CC])
def test_an_apps_own_client_credentials_connection_lives_like_any_other(
    stack: CCStack, name: str
) -> None:
    workspace = f"ws-cc-{name}"
    made = create(stack, name, workspace, params=link_params_of(name))
    assert made.status_code == 201, f"{made.text}; {stack.emulator.problems_of(name)}"
    first = token_ok(stack, name, workspace, "svc")
    assert first["access_token"].startswith(f"cc-{name}-")
    assert first["expires_at"] is not None
    renewed = refresh_ok(stack, name, workspace, "svc")
    assert renewed["access_token"] != first["access_token"]
    row = connection(stack, name, workspace)
    assert row["status"] == "active"
    spec = EMULATED[name]
    outcome = delete(stack, name, workspace, "svc")
    assert outcome["deleted"] is True
    assert outcome["revoked"] is (True if spec.revocation_endpoint else None)
    if spec.revocation_endpoint:
        grant = stack.emulator.grant_of(renewed["access_token"])
        assert grant.revoked_with == [renewed["access_token"]]


def test_a_customers_own_client_is_used_and_never_shown(stack: CCStack) -> None:
    stack.emulator.register_customer_client("acme-m2m", CUSTOMER_ID, CUSTOMER_SECRET)
    made = create(
        stack, "acme-m2m", "ws-cust", client_id=CUSTOMER_ID, client_secret=CUSTOMER_SECRET
    )
    assert made.status_code == 201, made.text
    token = token_ok(stack, "acme-m2m", "ws-cust", "svc")
    assert stack.emulator.grant_of(token["access_token"]).place["client_id"] == CUSTOMER_ID
    renewed = refresh_ok(stack, "acme-m2m", "ws-cust", "svc")
    assert stack.emulator.grant_of(renewed["access_token"]).place["client_id"] == CUSTOMER_ID
    listed = stack.api.get("/v1/connections", params={"workspace_id": "ws-cust"})
    shown = listed.text + json.dumps(token) + json.dumps(renewed)
    assert CUSTOMER_SECRET not in shown
    with OAuthTokenCache(stack.database_url, None, stack.encryption_key) as vault:
        tokens = vault.get_tokens("acme-m2m", "ws-cust", "svc")
        assert tokens is not None and tokens.refresh_token is None
        assert CUSTOMER_SECRET not in repr(tokens) and CUSTOMER_SECRET not in str(dict(tokens))
        assert tokens.client_credentials is not None
        assert tokens.client_credentials.client_id == CUSTOMER_ID


def test_refused_credentials_keep_nothing(stack: CCStack) -> None:
    refused = create(stack, "acme-m2m", "ws-bad", client_id="nobody", client_secret="wrong")
    assert refused.status_code == 400 and "invalid_client_credentials" in refused.text
    assert "wrong" not in refused.text
    assert get_token(stack, "acme-m2m", "ws-bad", "svc").status_code == 404
    half = create(stack, "acme-m2m", "ws-bad", client_id="only-an-id")
    assert half.status_code == 422, half.text


def test_failed_credentials_put_back_the_connection_stored_before(stack: CCStack) -> None:
    with OAuthTokenCache(stack.database_url, None, stack.encryption_key) as vault:
        vault.store_tokens("acme-m2m", "ws-keep", "svc", "user-token", "user-refresh", 3600)
    refused = create(stack, "acme-m2m", "ws-keep", client_id="nobody", client_secret="wrong")
    assert refused.status_code == 400, refused.text
    with OAuthTokenCache(stack.database_url, None, stack.encryption_key) as vault:
        kept = vault.get_tokens("acme-m2m", "ws-keep", "svc")
    assert kept is not None and kept.access_token == "user-token"
    assert kept.refresh_token == "user-refresh" and kept.client_credentials is None


def test_posted_callbacks_are_bounded(stack: CCStack) -> None:
    form = {"content-type": "application/x-www-form-urlencoded"}
    unknown = httpx.post(f"{stack.base_url}/oauth/nope/callback", content=b"a=b", headers=form)
    assert unknown.status_code == 404
    huge = httpx.post(
        f"{stack.base_url}/oauth/acme-m2m/callback", content=b"a=" + b"x" * 70_000, headers=form
    )
    assert huge.status_code == 413
    many = "&".join(f"f{i}=v" for i in range(30)).encode()
    assert httpx.post(
        f"{stack.base_url}/oauth/acme-m2m/callback", content=many, headers=form
    ).status_code in (400, 422)


def stack_key(stack: CCStack) -> str:
    """The all-workspaces key ``tests`` that ``stack.api`` sends."""
    return stack.api.headers["authorization"].removeprefix("Bearer ")


def as_key(stack: CCStack, key: str, workspace: str, **extra: object) -> httpx.Response:
    body = {"provider": "acme-m2m", "workspace_id": workspace, "actor_id": "svc", **extra}
    headers = {"Authorization": f"Bearer {key}"}
    return httpx.post(f"{stack.base_url}/v1/client-credentials", json=body, headers=headers)


def test_a_workspace_key_may_not_use_the_apps_own_client(stack: CCStack) -> None:
    """Failed before issue 26: a key for one workspace fetched (and could read) a token of
    the app's own client, with any scope it named."""
    for scope in (None, "read", "admin"):
        extra = {} if scope is None else {"scope": scope}
        refused = as_key(stack, TENANT_KEY, "ws-tenant", **extra)
        assert refused.status_code == 403, refused.text
        assert refused.json()["code"] == "forbidden"
    assert get_token(stack, "acme-m2m", "ws-tenant", "svc").status_code == 404
    # Its own (customer) client is still its own business.
    stack.emulator.register_customer_client("acme-m2m", CUSTOMER_ID, CUSTOMER_SECRET)
    own = as_key(
        stack, TENANT_KEY, "ws-tenant", client_id=CUSTOMER_ID, client_secret=CUSTOMER_SECRET
    )
    assert own.status_code == 201, own.text
    # A key configured with app_client_credentials may, within the app's scopes.
    allowed = as_key(stack, TENANT_APP_KEY, "ws-tenant-app", scope="read")
    assert allowed.status_code == 201, allowed.text


def test_the_apps_own_client_only_asks_for_the_apps_scopes(stack: CCStack) -> None:
    """Failed before issue 26: any scope was sent with the app's own client."""
    for scope in ("admin", "read admin", ""):
        refused = create(stack, "acme-m2m", "ws-scoped", scope=scope)
        assert refused.status_code == 422, refused.text
        assert refused.json()["code"] == "invalid_input"
    refused = as_key(stack, TENANT_APP_KEY, "ws-tenant-app", scope="read admin")
    assert refused.status_code == 422, refused.text
    assert get_token(stack, "acme-m2m", "ws-scoped", "svc").status_code == 404
    made = create(stack, "acme-m2m", "ws-scoped", scope="read write")
    assert made.status_code == 201, made.text
    assert token_ok(stack, "acme-m2m", "ws-scoped", "svc")["access_token"]


def audit_of(
    stack: CCStack, key: str, workspace: str, actor: str, count: int
) -> list[dict[str, object]]:
    """An actor's audit entries as ``key`` reads them, once ``count`` are written."""
    headers = {"Authorization": f"Bearer {key}"}
    query = {"workspace_id": workspace, "actor_id": actor}
    for _ in range(100):
        answer = httpx.get(f"{stack.base_url}/v1/audit", params=query, headers=headers)
        assert answer.status_code == 200, answer.text
        entries: list[dict[str, object]] = answer.json()["entries"]
        if len(entries) >= count:
            return entries
        time.sleep(0.05)
    raise AssertionError(f"{count} audit entries expected, got {entries}")


def test_the_audit_names_the_key_and_hides_other_tenants_keys(stack: CCStack) -> None:
    """Failed before issue 26: the first token of a connection made through a key was
    audited as ``service``, and a workspace key's audit read showed every key's name."""
    made = as_key(stack, TENANT_APP_KEY, "ws-tenant-app", actor_id="audited")
    assert made.status_code == 201, made.text
    assert get_token(stack, "acme-m2m", "ws-tenant-app", "audited").status_code == 200
    mine = audit_of(stack, TENANT_APP_KEY, "ws-tenant-app", "audited", 2)
    assert [(e["caller"], e["outcome"]) for e in mine] == [
        ("tenant-app", "refreshed"),
        ("another key", "served"),  # the all-workspaces key "tests" read it
    ]
    assert all(entry["source"] == "127.0.0.1" for entry in mine)
    assert '"tests"' not in json.dumps(mine)
    everything = audit_of(stack, stack_key(stack), "ws-tenant-app", "audited", 2)
    assert [e["caller"] for e in everything] == [
        "tenant-app",
        "tests",
    ]


def test_a_disabled_app_client_is_the_apps_configuration(stack: CCStack) -> None:
    """The app's own client refused (``invalid_client``): the app's configuration is
    wrong, not the connection; the problem says so and carries the provider's answer."""
    assert create(stack, "acme-m2m", "ws-dead").status_code == 201
    stack.emulator.control("acme-m2m", "kill")
    try:
        refused = refresh(stack, "acme-m2m", "ws-dead", "svc")
        assert refused.status_code == 500, refused.text
        body = refused.json()
        assert body["code"] == "client_rejected" and body["error"] == "invalid_client"
        listed = connection(stack, "acme-m2m", "ws-dead")
        assert listed["status"] == "degraded"
        assert listed["last_error"].startswith("invalid_client")
    finally:
        stack.emulator.control("acme-m2m", "heal")


def test_providers_without_the_grant_are_refused(stack: CCStack) -> None:
    refused = create(stack, "google", "ws-x")
    assert refused.status_code == 422 and "client_credentials" in refused.text
    assert get_token(stack, "google", "ws-x", "svc").status_code == 404
    refused = create(stack, "acme-m2m", "ws-x", scope="bad\nscope")
    assert refused.status_code == 422


def test_the_cli_creates_one(stack: CCStack) -> None:
    stack.emulator.register_customer_client("acme-m2m", CUSTOMER_ID, CUSTOMER_SECRET)
    env = {
        "OAUTHVAULT_CONFIG": str(stack.config_path),
        "DATABASE_URL": stack.database_url,
        "REDIS_URL": "",
        "OAUTH_ENCRYPTION_KEY": stack.encryption_key,
    }
    runner = CliRunner()
    made = runner.invoke(
        main,
        [
            "tokens",
            "client-credentials",
            "acme-m2m",
            "ws-cli",
            "svc",
            "--client-id",
            CUSTOMER_ID,
            "--client-secret-stdin",
        ],
        input=CUSTOMER_SECRET + "\n",
        env=env,
    )
    assert made.exit_code == 0, made.output
    assert "connected" in made.output and CUSTOMER_SECRET not in made.output
    assert token_ok(stack, "acme-m2m", "ws-cli", "svc")["access_token"].startswith("cc-")
    bad = runner.invoke(
        main,
        ["tokens", "client-credentials", "acme-m2m", "ws-cli2", "svc", "--client-id", "x"],
        env=env,
    )
    assert bad.exit_code == 2 and "error:" in bad.output
    bad_param = runner.invoke(
        main,
        ["tokens", "client-credentials", "acme-m2m", "ws-cli3", "svc", "--param", "x"],
        env=env,
    )
    assert bad_param.exit_code == 2 and "NAME=VALUE" in bad_param.output
    unknown = runner.invoke(
        main,
        ["tokens", "client-credentials", "acme-m2m", "ws-cli3", "svc", "--param", "shop=x"],
        env=env,
    )
    assert unknown.exit_code == 2 and "params.shop" in unknown.output
