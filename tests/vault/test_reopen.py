"""A vault closed and used again reopens on its first call, in both flavours, on both
databases, with its local cache started afresh (found by review of the generated twins)."""

from __future__ import annotations

import asyncio

import pytest

from oauthvault import AsyncOAuthTokenCache, OAuthTokenCache

IDS = ("google", "ws_reopen", "user_1")


@pytest.fixture(params=["sqlite", "postgres"])
def url(request, sqlite_url):
    if request.param == "sqlite":
        return sqlite_url
    request.getfixturevalue("pg")
    return request.getfixturevalue("postgres_url")


def test_the_blocking_vault_serves_the_first_call_after_close(url, key):
    vault = OAuthTokenCache(url, "", key, local_cache=True)
    try:
        vault.store_tokens(*IDS, "first", "r", expires_in=600)
        assert vault.get_tokens(*IDS).access_token == "first"
        vault.close()
        assert vault.get_tokens(*IDS).access_token == "first"  # reopened, not an error
        vault.store_tokens(*IDS, "second", "r", expires_in=600)
        assert vault.get_tokens(*IDS).access_token == "second"
    finally:
        vault.close()


def test_the_asyncio_vault_serves_the_first_call_after_aclose(url, key):
    async def scenario() -> None:
        vault = AsyncOAuthTokenCache(url, "", key, local_cache=True)
        try:
            await vault.store_tokens(*IDS, "first", "r", expires_in=600)
            assert (await vault.get_tokens(*IDS)).access_token == "first"
            await vault.aclose()
            assert (await vault.get_tokens(*IDS)).access_token == "first"
            await vault.store_tokens(*IDS, "second", "r", expires_in=600)
            assert (await vault.get_tokens(*IDS)).access_token == "second"
        finally:
            await vault.aclose()

    asyncio.run(scenario())


def test_a_reopened_sqlite_vault_sees_a_commit_made_while_it_was_closed(sqlite_url, key):
    """The local cache of a closed vault is dropped: after reopening, a row changed by
    another writer meanwhile is read again, never served from before the close."""
    other = OAuthTokenCache(sqlite_url, "", key, local_cache=False)
    vault = OAuthTokenCache(sqlite_url, "", key, local_cache=True)
    try:
        vault.store_tokens(*IDS, "before", "r", expires_in=600)
        assert vault.get_tokens(*IDS).access_token == "before"
        assert vault.get_tokens(*IDS).access_token == "before"
        assert vault.cache_info().local_hits >= 1
        vault.close()
        other.store_tokens(*IDS, "meanwhile", "r", expires_in=600)
        assert vault.get_tokens(*IDS).access_token == "meanwhile"
    finally:
        vault.close()
        other.close()
