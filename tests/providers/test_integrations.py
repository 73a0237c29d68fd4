"""Integrations: several apps of one catalog provider in one deployment (``provider = ...``),
each with its own client and scopes, through the service, the library and the CLI; and a
connect link that narrows an app's scopes for one connection."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from oauthvault import ConfigError
from oauthvault.cli import main
from oauthvault.providers import load_catalog, load_provider_configs
from oauthvault.providers.credentials import load_credential_catalog

from tests.helpers.emulated_service import emulated_service
from tests.helpers.emulations import EMULATIONS
from tests.providers.test_conformance import Stack, browse, connection, refresh_ok, token_ok

GOOGLE = load_catalog()["google"]
# The emulator plays each integration as its own provider (own client, own paths), asking
# exactly the scopes the test expects to reach it: google-mail's link narrows to "openid".
EMULATED = {
    "google-mail": dataclasses.replace(GOOGLE, name="google-mail", default_scopes=("openid",)),
    "google-drive": dataclasses.replace(GOOGLE, name="google-drive"),
    # A single-tenant app: the tenant is fixed in its table, not given per link.
    "ms-contoso": dataclasses.replace(load_catalog()["microsoft-tenant"], name="ms-contoso"),
}
EMULATION_OF = {"google-mail": "google", "google-drive": "google", "ms-contoso": "microsoft-tenant"}


@pytest.fixture(scope="module")
def stack(postgres_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with emulated_service(
        EMULATED,
        {name: EMULATIONS[EMULATION_OF[name]] for name in EMULATED},
        database_url=postgres_url,
        directory=tmp_path_factory.mktemp("integrations"),
        extra_keys={
            "google-mail": 'provider = "google"\nscopes = ["openid", "email"]',
            "google-drive": 'provider = "google"',
            "ms-contoso": 'provider = "microsoft-tenant"\ntenant = "contoso.onmicrosoft.com"',
        },
    ) as service:
        yield service


def link(stack: Stack, provider: str, **extra: object) -> httpx.Response:
    body = {"provider": provider, "workspace_id": "ws-int", "actor_id": "u1", **extra}
    return stack.api.post("/v1/connect-links", json=body)


def test_two_apps_of_one_provider_hold_separate_connections(stack: Stack) -> None:
    made = link(stack, "google-mail", scopes=["openid"])
    assert made.status_code == 201, made.text
    assert "Connected" in browse(made.json()["url"]).text, stack.emulator.problems
    made = link(stack, "google-drive")
    assert made.status_code == 201, made.text
    assert "Connected" in browse(made.json()["url"]).text, stack.emulator.problems
    mail = token_ok(stack, "google-mail", "ws-int", "u1")
    drive = token_ok(stack, "google-drive", "ws-int", "u1")
    assert mail["access_token"] != drive["access_token"]
    # Each app's own client got the code: the emulator issued them to different clients.
    assert stack.emulator.grant_of(mail["access_token"]).provider == "google-mail"
    assert stack.emulator.grant_of(drive["access_token"]).provider == "google-drive"
    assert stack.emulator.grant_of(mail["access_token"]).scope == "openid"
    # Refresh goes to the right app too.
    refreshed = refresh_ok(stack, "google-mail", "ws-int", "u1")
    assert refreshed["access_token"] != mail["access_token"]
    assert connection(stack, "google-mail", "ws-int")["status"] == "active"
    assert connection(stack, "google-drive", "ws-int")["status"] == "active"


def test_a_value_fixed_by_the_app_is_used_and_cannot_be_given_per_link(stack: Stack) -> None:
    made = link(stack, "ms-contoso")
    assert made.status_code == 201, made.text
    page = browse(made.json()["url"])
    assert "Connected" in page.text, stack.emulator.problems
    token = token_ok(stack, "ms-contoso", "ws-int", "u1")
    assert token["params"]["tenant"] == "contoso.onmicrosoft.com"
    assert stack.emulator.grant_of(token["access_token"]).place == {
        "tenant": "contoso.onmicrosoft.com"
    }
    refused = link(stack, "ms-contoso", params={"tenant": "evil.onmicrosoft.com"})
    assert refused.status_code == 422 and "params.tenant" in refused.text


def test_a_link_may_only_narrow_the_apps_scopes(stack: Stack) -> None:
    for scopes in (["openid", "https://mail.google.com/"], [], "openid"):
        refused = link(stack, "google-mail", scopes=scopes)
        assert refused.status_code in (400, 422), refused.text
    assert link(stack, "google-mail", scopes=["email"]).status_code == 201


def test_the_provider_list_names_the_apps_of_each_provider(stack: Stack) -> None:
    listed = stack.api.get("/v1/providers")
    assert listed.status_code == 200, listed.text
    rows = {row["name"]: row for row in listed.json()}
    assert len(rows) == len(load_catalog())
    assert rows["google"]["configured"] is True
    assert rows["google"]["apps"] == ["google-drive", "google-mail"]
    assert rows["microsoft-tenant"]["apps"] == ["ms-contoso"]
    assert rows["slack"]["configured"] is False and rows["slack"]["apps"] == []
    assert {p["name"] for p in rows["shopify"]["connection_params"]} == {"shop"}
    assert "secret" not in listed.text.lower().replace("client_secret_", "")
    assert httpx.get(f"{stack.base_url}/v1/providers").status_code == 401


def test_an_integration_table_is_checked(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    for table, setting in (
        ('provider = "nope"\nclient_id = "i"\nclient_secret = "s"\n', "provider"),
        ('provider = "google"\nclient_id = "i"\nclient_secret = "s"\ntypo = 1\n', "typo"),
    ):
        path.write_text(f"[providers.google-x]\n{table}")
        with pytest.raises(ConfigError) as caught:
            load_provider_configs(path, {})
        assert caught.value.setting.endswith(f"providers.google-x.{setting}")
    path.write_text('[providers.google-x]\nprovider = "google"\nclient_id = "i"\n')
    configs = load_provider_configs(path, {"OAUTHVAULT_PROVIDER_GOOGLE_X_CLIENT_SECRET": "s"})
    assert configs["google-x"].catalog_provider == "google"
    assert configs["google-x"].spec is not None
    assert configs["google-x"].spec.token_endpoint == GOOGLE.token_endpoint


def test_cli_lists_and_shows_the_catalog() -> None:
    runner = CliRunner()
    listed = runner.invoke(main, ["providers", "list"])
    assert listed.exit_code == 0
    lines = listed.output.splitlines()
    credential_names = set(load_credential_catalog())
    assert len(lines) == len(load_catalog()) + len(credential_names)
    shopify = next(line for line in lines if line.startswith("shopify\t"))
    assert "params=shop" in shopify and "refresh=yes" in shopify
    as_json = runner.invoke(main, ["providers", "list", "--json"])
    rows = [json.loads(line) for line in as_json.output.splitlines()]
    assert {row["name"] for row in rows} == set(load_catalog()) | credential_names
    shown = runner.invoke(main, ["providers", "show", "salesforce"])
    assert shown.exit_code == 0
    assert "introspection" in shown.output and "docs: https://" in shown.output
    assert "hostname: Login host" in shown.output
    missing = runner.invoke(main, ["providers", "show", "nope"])
    assert missing.exit_code == 2 and "error:" in missing.output
