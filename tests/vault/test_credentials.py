"""Non-OAuth credentials in the library: stored verified (or refused, nothing kept), read
back as a read-only mapping that shows no value, listed and deleted like tokens, refused
where a token is asked for, and marked ``needs_reauth`` when the provider stops taking
them. Against the credential API emulator on loopback, on SQLite and PostgreSQL, with
and without Redis, in both flavours."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator

import pytest

from oauthvault import (
    AsyncOAuthTokenCache,
    InvalidCredentials,
    InvalidInput,
    OAuthTokenCache,
    TokenNotFound,
    WrongCredentialKind,
)
from oauthvault.models import ConnectionEvent
from oauthvault.providers.credential_apps import CredentialApp
from oauthvault.providers.credentials import load_credential_catalog

from tests.helpers.credential_api import CredentialApiEmulator

GOOD = {"api_key": "sk-" + "G" * 40}
WRONG = {"api_key": "sk-" + "W" * 40}
IDS = ("openai", "ws-cred", "actor-1")


@pytest.fixture(scope="module")
def api() -> Iterator[CredentialApiEmulator]:
    emulator = CredentialApiEmulator(load_credential_catalog()).start()
    emulator.accept("openai", GOOD)
    yield emulator
    emulator.stop()


@pytest.fixture
def apps(api: CredentialApiEmulator) -> dict[str, CredentialApp]:
    return {"openai": CredentialApp("openai", api.base_override("openai"))}


@pytest.fixture(params=["db-only", "redis"])
def redis(request: pytest.FixtureRequest) -> str:
    if request.param == "db-only":
        return ""
    url: str = request.getfixturevalue("redis_url")
    return url


def test_a_verified_key_is_stored_read_listed_and_deleted(
    database_url, redis, key, apps, api, caplog
):
    events: list[ConnectionEvent] = []
    caplog.set_level(logging.DEBUG)
    with OAuthTokenCache(
        database_url, redis, key, credential_apps=apps, on_event=events.append
    ) as vault:
        vault.delete_tokens(*IDS)
        stored = vault.store_credentials(*IDS, GOOD)
        assert dict(stored) == GOOD
        read = vault.get_credentials(*IDS)
        assert read["api_key"] == GOOD["api_key"] and read.kind == "api_key"
        assert GOOD["api_key"] not in repr(read) and GOOD["api_key"] not in str(read)
        with pytest.raises(TypeError):
            read["api_key"] = "x"  # type: ignore[index]
        with pytest.raises(WrongCredentialKind) as no_token:
            vault.get_access_token(*IDS)
        assert no_token.value.kind == "api_key"
        with pytest.raises(WrongCredentialKind):
            vault.get_tokens(*IDS)
        [listed] = vault.list_connections(provider="openai", workspace_id=IDS[1])
        assert listed.status == "active" and listed.expires_at is None
        assert not listed.has_refresh_token  # a key renews nothing
        assert GOOD["api_key"] not in repr(listed)
        assert vault.delete_tokens(*IDS)
        with pytest.raises(TokenNotFound):
            vault.get_credentials(*IDS)
    verified = [seen for seen in api.requests_for("openai") if seen.path.endswith("/v1/models")]
    assert verified and verified[-1].matched and verified[-1].method == "GET"
    assert "authorization" in verified[-1].header_names
    assert GOOD["api_key"] not in caplog.text


def test_a_refused_key_is_not_kept_and_the_one_before_stays(sqlite_url, key, apps):
    with OAuthTokenCache(sqlite_url, "", key, credential_apps=apps) as vault:
        vault.store_credentials(*IDS, GOOD)
        with pytest.raises(InvalidCredentials) as refused:
            vault.store_credentials(*IDS, WRONG)
        assert WRONG["api_key"] not in str(refused.value)
        assert refused.value.error == "invalid_credentials"
        assert vault.get_credentials(*IDS)["api_key"] == GOOD["api_key"]
        with pytest.raises(InvalidCredentials):
            vault.store_credentials("openai", "ws-cred", "actor-2", WRONG)
        with pytest.raises(TokenNotFound):
            vault.get_credentials("openai", "ws-cred", "actor-2")


def test_unverified_storage_and_field_rules(sqlite_url, key, apps):
    with OAuthTokenCache(sqlite_url, "", key, credential_apps=apps) as vault:
        vault.store_credentials(*IDS, WRONG, verify=False)  # imported as it was
        assert vault.get_credentials(*IDS)["api_key"] == WRONG["api_key"]
        for bad, argument in (
            ({"api_key": "not-an-openai-key"}, "credentials.api_key"),
            ({}, "credentials.api_key"),
            ({"api_key": GOOD["api_key"], "other": "x"}, "credentials.other"),
            ({"api_key": "sk-" + "a" * 30 + "\n"}, "credentials.api_key"),
        ):
            with pytest.raises(InvalidInput) as error:
                vault.store_credentials(*IDS, bad)
            assert error.value.argument == argument
            assert "sk-" not in str(error.value)


def test_a_key_the_provider_stops_taking_needs_reauth_with_an_event(sqlite_url, key, apps, api):
    events: list[ConnectionEvent] = []
    api.accept("openai", {"api_key": "sk-" + "R" * 40})
    revocable = {"api_key": "sk-" + "R" * 40}
    with OAuthTokenCache(
        sqlite_url, "", key, credential_apps=apps, on_event=events.append
    ) as vault:
        vault.store_credentials(*IDS, revocable)
        assert vault.verify_credentials(*IDS) == "valid"
        assert events == []
        api.forget("openai")
        try:
            assert vault.verify_credentials(*IDS) == "refused"
        finally:
            api.accept("openai", GOOD)
        [listed] = vault.list_connections(workspace_id=IDS[1])
        assert listed.status == "needs_reauth"
        assert listed.last_error is not None and "401" in listed.last_error
        [event] = events
        assert (event.kind, event.status, event.previous_status) == (
            "status_changed",
            "needs_reauth",
            "active",
        )
        vault.store_credentials(*IDS, GOOD)  # a new key: active again
        [listed] = vault.list_connections(workspace_id=IDS[1])
        assert listed.status == "active"


def test_oauth_connections_have_no_credential_fields(sqlite_url, key):
    with OAuthTokenCache(sqlite_url, "", key) as vault:
        vault.store_tokens("google", "ws", "a", "access", "refresh", 3600)
        with pytest.raises(WrongCredentialKind) as error:
            vault.get_credentials("google", "ws", "a")
        assert error.value.kind == "oauth2"


def test_the_async_vault_does_the_same(postgres_url, pg, redis_url, key, apps):
    async def scenario() -> None:
        async with AsyncOAuthTokenCache(
            postgres_url, redis_url, key, credential_apps=apps
        ) as vault:
            await vault.delete_tokens(*IDS)
            await vault.store_credentials(*IDS, GOOD)
            read = await vault.get_credentials(*IDS)
            assert read["api_key"] == GOOD["api_key"]
            with pytest.raises(WrongCredentialKind):
                await vault.get_access_token(*IDS)
            with pytest.raises(InvalidCredentials):
                await vault.store_credentials(*IDS, WRONG)
            assert await vault.verify_credentials(*IDS) == "valid"
            assert await vault.delete_tokens(*IDS)

    asyncio.run(scenario())


def test_an_unknown_provider_is_refused(sqlite_url, key):
    from oauthvault import UnknownProvider

    with OAuthTokenCache(sqlite_url, "", key) as vault, pytest.raises(UnknownProvider):
        vault.store_credentials("no-such-provider", "ws", "a", {"api_key": "x"})


def test_the_adapters_place_any_kind_and_a_401_marks_a_static_key(sqlite_url, key, apps, api):
    """httpx (sync and async) and requests put the credential where the catalog says; a
    401 to a static key is answered by a verification (refused: needs_reauth)."""
    import httpx
    import requests

    from oauthvault.adapters.httpx_auth import AsyncVaultAuth, VaultAuth
    from oauthvault.adapters.requests_auth import VaultRequestsAuth

    url = api.base_override("openai") + "/v1/models"
    with OAuthTokenCache(sqlite_url, "", key, credential_apps=apps) as vault:
        vault.store_credentials(*IDS, GOOD)
        placement = vault.request_auth(*IDS)
        assert dict(placement.headers) == {"Authorization": f"Bearer {GOOD['api_key']}"}
        assert not placement.renewable and GOOD["api_key"] not in repr(placement)
        with httpx.Client(auth=VaultAuth(vault, *IDS)) as client:
            assert client.get(url).status_code == 200
        assert requests.get(url, auth=VaultRequestsAuth(vault, *IDS), timeout=10).status_code == 200
        assert api.requests_for("openai")[-1].matched
        api.forget("openai")
        try:
            with httpx.Client(auth=VaultAuth(vault, *IDS)) as client:
                assert client.get(url).status_code == 401  # not retried: only its owner can fix it
        finally:
            api.accept("openai", GOOD)
        [listed] = vault.list_connections(workspace_id=IDS[1])
        assert listed.status == "needs_reauth"

    async def with_async() -> None:
        async with AsyncOAuthTokenCache(sqlite_url, "", key, credential_apps=apps) as twin:
            async with httpx.AsyncClient(auth=AsyncVaultAuth(twin, *IDS)) as client:
                assert (await client.get(url)).status_code == 200

    asyncio.run(with_async())
