"""Tokens, keys and passwords never show in repr, str, logs or error messages."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import pytest

from oauthvault import (
    DecryptionError,
    InvalidInput,
    KeyRing,
    OAuthTokenCache,
    Settings,
    TokenKey,
    TokenSet,
)
from oauthvault.cache import RedisTokenCache
from oauthvault.crypto.sealing import seal_row
from oauthvault.storage.location import parse_database_url
from oauthvault.vault.steps import WriteCache

ACCESS = "ya29.ACCESS-SECRET-VALUE"
REFRESH = "1//REFRESH-SECRET-VALUE"
SECRETS = ("ACCESS-SECRET", "REFRESH-SECRET")


def assert_clean(text: str) -> None:
    for secret in SECRETS:
        assert secret not in text


def test_token_set_hides_its_tokens():
    tokens = TokenSet(ACCESS, REFRESH, datetime(2030, 1, 1, tzinfo=UTC), "mail")
    assert_clean(repr(tokens))
    assert_clean(str(tokens))
    assert_clean(f"{tokens}")
    assert "mail" in repr(tokens)


def test_sealed_rows_keyrings_and_steps_hide_their_contents():
    ring = KeyRing.generate()
    row = seal_row(ring, TokenKey("g", "w", "a"), TokenSet(ACCESS, REFRESH, None, None))
    assert row.access_token_encrypted not in repr(row)
    assert repr(ring) == f"KeyRing(key_ids={ring.key_ids!r})"
    assert "aead" not in repr(ring.primary)
    assert "value" not in repr(WriteCache("k", b"sealed-bytes", 10, False))


def test_settings_mask_urls_and_keys():
    settings = Settings.load(
        database_url="postgresql://root:hunter2@db/x",
        redis_url="redis://:hunter3@cache:6379/0",
        oauth_encryption_key="key-material",
    )
    shown = repr(settings) + str(settings)
    for secret in ("hunter2", "hunter3", "key-material"):
        assert secret not in shown


def test_database_descriptions_drop_the_password():
    location = parse_database_url("postgresql://root:hunter2@db.internal:5433/vault")
    assert location.description == "postgresql://db.internal:5433/vault"
    assert "hunter2" not in repr(location)


def test_the_vault_repr_shows_no_password(sqlite_url, key):
    with OAuthTokenCache(sqlite_url, "redis://:hunter3@127.0.0.1:6379/15", key) as vault:
        assert "hunter3" not in repr(vault)
        assert key not in repr(vault)
    cache = RedisTokenCache("redis://:hunter3@127.0.0.1:6379/15", invalidations=None)
    assert "hunter3" not in repr(cache)
    cache.close()


def test_invalid_token_errors_do_not_quote_the_token(sqlite_url, key):
    with OAuthTokenCache(sqlite_url, encryption_key=key) as vault:
        with pytest.raises(InvalidInput) as caught:
            vault.store_tokens("google", "ws", "u", "SECRET-WITH\nNEWLINE")
        assert "SECRET" not in str(caught.value)
        with pytest.raises(InvalidInput) as caught:
            vault.store_tokens("google", "ws", "u", "ok", "REFRESH-SECRET" * 2000)
        assert_clean(str(caught.value))


def test_a_whole_life_cycle_logs_no_secret(postgres_url, pg, private_redis, key, caplog):
    caplog.set_level(logging.DEBUG)  # every logger, the libraries' too
    with OAuthTokenCache(postgres_url, private_redis.url, key) as vault:
        vault.store_tokens("google", "ws", "u", ACCESS, REFRESH, 600, "mail")
        vault.get_tokens("google", "ws", "u")
        private_redis.stop()  # failure paths log too
        vault.store_tokens("google", "ws", "u", ACCESS, REFRESH, 600, "mail")
        vault.get_tokens("google", "ws", "u")
        pg.execute("UPDATE oauth_tokens SET refresh_token_encrypted = access_token_encrypted")
        with pytest.raises(DecryptionError) as caught:
            vault.get_stored_tokens("google", "ws", "u")  # an edit no feed announces
        assert_clean(str(caught.value))
        vault.delete_tokens("google", "ws", "u")
    assert "unavailable" in caplog.text  # the outage was logged...
    assert_clean(caplog.text)  # ...without a token
    for record in caplog.records:
        assert_clean(repr(record.args))


def test_the_local_cache_keeps_tokens_sealed(postgres_url, pg, key):
    """The in-process cache holds sealed records: neither token is in memory in the clear
    (beyond the TokenSet handed to the caller), nor in any repr."""
    import time

    with OAuthTokenCache(postgres_url, "", key) as vault:
        deadline = time.monotonic() + 10
        while not vault.cache_info().local_live:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        vault.store_tokens("google", "ws", "u", ACCESS, REFRESH, 600, "mail")
        vault.get_tokens("google", "ws", "u")
        assert vault.get_tokens("google", "ws", "u").access_token == ACCESS
        assert vault.cache_info().local_hits >= 1
        entries = list(vault._local._entries.values())  # noqa: SLF001 - looks inside on purpose
        assert entries
        for _version, record, _deadline in entries:
            assert ACCESS.encode() not in record.sealed and REFRESH.encode() not in record.sealed
            assert_clean(repr(record))
        assert_clean(repr(vault.cache_info()))


@pytest.mark.parametrize("flavour", ["sync", "async"])
def test_a_token_sent_in_a_query_never_shows_in_httpx_request_logs(flavour, monkeypatch, caplog):
    """A Zoho revocation carries the refresh token in its URL query: httpx logs every
    request's URL at INFO, and the token request drivers keep the query out of it, from
    the first request of a process on (nothing is installed at import)."""
    import asyncio

    import httpx
    from pydantic import SecretStr

    from oauthvault.oauth.revoke import revocation_request
    from oauthvault.oauth.token_request import run_async, run_sync
    from oauthvault.providers import ProviderConfig, load_catalog

    monkeypatch.setattr(logging.getLogger("httpx"), "filters", [])  # as in a fresh process
    caplog.set_level(logging.DEBUG)
    config = ProviderConfig(
        name="zoho", spec=load_catalog()["zoho"], client_id="cid", client_secret=SecretStr("s")
    )
    request = revocation_request(
        config, TokenSet(ACCESS, REFRESH, None, None, {"domain": "zoho.eu"})
    )
    assert request is not None and "REFRESH-SECRET" in request.url  # the query carries it

    def revocation():
        answer = yield request
        return answer.status

    sent = []

    def provider(outgoing: httpx.Request) -> httpx.Response:
        sent.append(outgoing.url)
        return httpx.Response(200)

    transport = httpx.MockTransport(provider)
    if flavour == "sync":
        with httpx.Client(transport=transport) as http:
            assert run_sync(revocation(), http) == 200
    else:

        async def revoke() -> int:
            async with httpx.AsyncClient(transport=transport) as http:
                return await run_async(revocation(), http)

        assert asyncio.run(revoke()) == 200
    assert "REFRESH-SECRET" in str(sent[0])  # the provider got it...
    assert "token/revoke?[redacted]" in caplog.text  # ...httpx logged the request...
    assert_clean(caplog.text)  # ...without it
    for record in caplog.records:
        assert_clean(repr(record.args))


def test_credentials_and_where_they_go_hide_their_values(sqlite_url, key):
    """A non-OAuth credential's values stay out of repr and str: the fields, the token
    set and sealed row holding them, the placement on a request, an app's settings, and
    every error about a field."""
    from oauthvault import Credentials
    from oauthvault.providers.credential_apps import CredentialApp
    from oauthvault.providers.credentials import load_credential_catalog

    secret = "sk-CREDENTIAL-SECRET-" + "x" * 20
    fields = Credentials("api_key", {"api_key": secret})
    tokens = TokenSet("", None, None, None, credentials=fields)
    spec = load_credential_catalog()["openai"]
    placement = spec.placement(fields, {})
    app = CredentialApp("github-app", None, {"private_key": "-----BEGIN KEY-CREDENTIAL-SECRET"})
    row = seal_row(KeyRing.from_text(key), TokenKey("openai", "ws", "a"), tokens)
    for thing in (fields, tokens, placement, app, row):
        assert "CREDENTIAL-SECRET" not in repr(thing) and "CREDENTIAL-SECRET" not in str(thing)
    with OAuthTokenCache(sqlite_url, "", key) as vault:
        with pytest.raises(InvalidInput) as error:
            vault.store_credentials("openai", "ws", "a", {"api_key": "bad CREDENTIAL-SECRET"})
        assert "CREDENTIAL-SECRET" not in str(error.value)
