"""Client adapters against the real local provider's userinfo endpoint."""

from __future__ import annotations

import asyncio

import httpx
import pytest
import requests

from oauthvault import AsyncOAuthTokenCache, OAuthTokenCache
from oauthvault.adapters.google import vault_credentials
from oauthvault.adapters.httpx_auth import AsyncVaultAuth, VaultAuth
from oauthvault.adapters.requests_auth import VaultRequestsAuth
from oauthvault.providers.config import load_provider_configs

IDS = ("local", "ws_adapters", "alice")


@pytest.fixture
def vault(providers_file, grant, sqlite_url, key):
    """``grant`` is alice's (the provider's default login)."""
    providers = load_provider_configs(providers_file, {})
    with OAuthTokenCache(sqlite_url, "", key, providers=providers) as vault:
        # A token the provider no longer accepts, though we think it valid for an hour:
        # the adapters must refresh on the 401 and retry once.
        vault.store_tokens(*IDS, "revoked-or-rotated", grant[1], expires_in=3600)
        yield vault


def userinfo(op):
    return f"{op.issuer}/me"


def test_httpx_auth_refreshes_on_401_and_retries(op, vault):
    with httpx.Client(auth=VaultAuth(vault, *IDS)) as client:
        response = client.get(userinfo(op))
    assert response.status_code == 200
    assert response.json()["sub"] == "alice"
    assert op.stats()["refresh_token_ok"] == 1
    with httpx.Client(auth=VaultAuth(vault, *IDS)) as client:
        assert client.get(userinfo(op)).status_code == 200  # the stored token is good now
    assert op.stats()["refresh_token_ok"] == 1


def test_async_httpx_auth(op, vault, key):
    async def scenario():
        async with (
            AsyncOAuthTokenCache(
                vault.database,
                "",
                key,
                providers=dict(vault.providers),
            ) as twin,
            httpx.AsyncClient(auth=AsyncVaultAuth(twin, *IDS)) as client,
        ):
            return await client.get(userinfo(op))

    response = asyncio.run(scenario())
    assert response.status_code == 200 and response.json()["sub"] == "alice"
    assert op.stats()["refresh_token_ok"] == 1


def test_requests_auth_refreshes_on_401_and_retries(op, vault):
    response = requests.get(userinfo(op), auth=VaultRequestsAuth(vault, *IDS), timeout=10)
    assert response.status_code == 200
    assert response.json()["sub"] == "alice"
    assert [r.status_code for r in response.history] == [401]
    assert op.stats()["refresh_token_ok"] == 1


def test_google_credentials_refresh_through_the_vault(op, vault):
    from google.auth.transport.requests import AuthorizedSession
    from googleapiclient.discovery import build

    credentials = vault_credentials(vault, "ws_adapters", "alice", provider="local")
    # The seed design's call: builds offline from the bundled discovery document.
    gmail = build("gmail", "v1", credentials=credentials, static_discovery=True)
    assert gmail.users().messages().list(userId="me").uri.startswith("https://gmail.")
    # Google's own session refreshes on a 401 by calling credentials.refresh -> the vault.
    response = AuthorizedSession(credentials).get(userinfo(op))
    assert response.status_code == 200 and response.json()["sub"] == "alice"
    assert op.stats()["refresh_token_ok"] == 1
    assert credentials.token == vault.get_access_token(*IDS)
    assert "alice" in repr(credentials) and credentials.token not in repr(credentials)


def test_adapters_hide_tokens_in_repr(vault):
    assert "revoked-or-rotated" not in repr(VaultAuth(vault, *IDS))
    assert "revoked-or-rotated" not in repr(VaultRequestsAuth(vault, *IDS))
