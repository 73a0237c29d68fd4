"""A GitHub App's connect link installs the app and keeps the installation: the link's page,
the install page (the GitHub emulator), the callback with ``installation_id`` and a code,
the installing user's installations checked (GitHub warns the id can be spoofed), the
installation stored and its first token minted, the flow ending on the return URL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from oauthvault import generate_key

from tests.helpers.app_emulators import GitHubEmulator
from tests.helpers.service_harness import (
    ConnectEnvironment,
    outcome,
    running_environment,
    walk,
)

APP_ID = "424242"
SLUG = "acme-sync"
CLIENT_ID = "Iv1.acme-sync-client"
CLIENT_SECRET = "acme-sync-client-secret"  # a made-up secret for the emulator


@pytest.fixture(scope="module")
def github() -> Iterator[GitHubEmulator]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    with GitHubEmulator() as emulator:
        emulator.register_app(APP_ID, key)
        emulator.slugs[SLUG] = APP_ID
        emulator.clients[CLIENT_ID] = CLIENT_SECRET
        emulator.key = key  # type: ignore[attr-defined]
        yield emulator


@pytest.fixture(scope="module")
def service(
    github: GitHubEmulator,
    tmp_path_factory: pytest.TempPathFactory,
    postgres_url: str,
    _redis_checked: str,
) -> Iterator[ConnectEnvironment]:
    pem = github.key.private_bytes(  # type: ignore[attr-defined]
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    ).decode()
    extra = f'''
[credentials.github-app]
app_id = "{APP_ID}"
app_slug = "{SLUG}"
private_key = """{pem}"""
api_base_url = "{github.base_url}"
install_url = "{github.base_url}/apps/{SLUG}/installations/new"
client_id = "{CLIENT_ID}"
client_secret = "{CLIENT_SECRET}"
oauth_url = "{github.base_url}"
'''
    directory: Path = tmp_path_factory.mktemp("github_install")
    with running_environment(
        directory,
        postgres_url,
        _redis_checked,
        generate_key(),
        auto_approve=True,
        extra_config=extra,
    ) as environment:
        github.callback_url = f"{environment.base_url}/oauth/github-app/callback"
        yield environment


def _link(service: ConnectEnvironment, actor: str) -> str:
    with service.api() as api:
        created = api.post(
            "/v1/connect-links",
            json={
                "provider": "github-app",
                "workspace_id": "ws_gh",
                "actor_id": actor,
                "return_url": service.return_url,
            },
        )
    assert created.status_code == 201, created.text
    url: str = created.json()["url"]
    return url


def _install(service: ConnectEnvironment, actor: str) -> httpx.Response:
    with httpx.Client(timeout=10) as browser:
        return walk(browser, _link(service, actor), lambda url: "/app/done" in url, actor)


def test_an_installation_by_its_user_is_stored_and_minted(service, github):
    github.send_code = True
    github.next_install = ("5550001", "user-token-of-ana")
    assert outcome(_install(service, "ana"))["oauthvault_status"] == "connected"
    with service.api() as api:
        stored = api.get(
            "/v1/connections/token",
            params={"provider": "github-app", "workspace_id": "ws_gh", "actor_id": "ana"},
        )
        listing = api.get("/v1/connections", params={"workspace_id": "ws_gh"}).json()
    assert stored.status_code == 200 and stored.json()["access_token"].startswith("ghs_")
    assert stored.json()["params"]["installation_id"] == "5550001"
    assert [row["auth"] for row in listing if row["actor_id"] == "ana"] == ["app"]
    assert github.mints["5550001"] == 1
    assert "user-token-of-ana" not in stored.text


def test_a_spoofed_installation_is_not_kept(service, github):
    """The callback names an installation the user cannot reach: refused."""
    github.send_code = True
    github.install("5559999", APP_ID)  # someone else's installation of the same app
    github.next_install = ("5550002", "user-token-of-bo")
    with httpx.Client(timeout=10) as browser:
        response = walk(
            browser, _link(service, "bo"), lambda url: "/oauth/github-app/callback" in url, "bo"
        )
        callback = str(response.url.join(response.headers["location"]))
        spoofed = callback.replace("installation_id=5550002", "installation_id=5559999")
        ended = browser.get(spoofed)
    assert outcome(ended)["oauthvault_error"] == "unverified_installation"
    with service.api() as api:
        listing = api.get("/v1/connections", params={"workspace_id": "ws_gh"}).json()
    assert [row for row in listing if row["actor_id"] == "bo"] == []


def test_without_user_authorization_the_installation_cannot_be_confirmed(service, github):
    github.send_code = False
    github.next_install = ("5550003", "user-token-of-cy")
    try:
        assert outcome(_install(service, "cy"))["oauthvault_error"] == "unverified_installation"
    finally:
        github.send_code = True


def test_a_callback_without_this_browsers_state_is_refused(service, github):
    github.next_install = ("5550004", "user-token-of-di")
    with httpx.Client(timeout=10) as browser:
        response = walk(
            browser, _link(service, "di"), lambda url: "/oauth/github-app/callback" in url, "di"
        )
        callback = str(response.url.join(response.headers["location"]))
    with httpx.Client(timeout=10) as other_browser:  # the callback opened elsewhere
        ended = other_browser.get(callback)
    assert ended.status_code in (400, 303)
    with service.api() as api:
        listing = api.get("/v1/connections", params={"workspace_id": "ws_gh"}).json()
    assert [row for row in listing if row["actor_id"] == "di"] == []
