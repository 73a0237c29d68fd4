"""The library client (``vault.http_client``) against a loopback provider API, sync and
async: the credential placed, URLs that could leave the API refused before anything is
sent, redirects only to the provider's hosts, 429 waited out under the cap and returned
over it, a 401 to a static credential verified, and a 401 to an OAuth connection renewed
once (one grant at the local OpenID provider) and the request sent again."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from oauthvault import AsyncOAuthTokenCache, OAuthTokenCache, generate_key
from oauthvault.config import Settings
from oauthvault.providers.api_targets import TargetRefused
from oauthvault.providers.config import load_provider_configs
from oauthvault.providers.credential_apps import CredentialApp

from tests.helpers.oidc_server import OIDCServer, local_provider_toml
from tests.helpers.proxy_upstream import ProxyUpstream

KEY = "sk-" + "x" * 40
WS = "ws_client"
KEY_IDS = ("openai", WS, "key-user")
OAUTH_IDS = ("local", WS, "oauth-user")


@pytest.fixture(scope="module")
def upstream() -> Iterator[ProxyUpstream]:
    with ProxyUpstream() as api:
        yield api


@pytest.fixture
def options(upstream: ProxyUpstream, tmp_path: Path) -> dict[str, object]:
    apps = {"openai": CredentialApp("openai", f"{upstream.base_url}/api")}
    return {
        "database_url": f"sqlite:///{tmp_path / 'vault.db'}",
        "redis_url": "",
        "encryption_key": generate_key(),
        "credential_apps": apps,
    }


@pytest.fixture
def vault(options: dict[str, object]) -> Iterator[OAuthTokenCache]:
    with OAuthTokenCache(**options) as opened:  # type: ignore[arg-type]
        opened.store_credentials(*KEY_IDS, {"api_key": KEY}, verify=False)
        yield opened


@pytest.fixture
def client(vault: OAuthTokenCache) -> Iterator[httpx.Client]:
    with vault.http_client(*KEY_IDS, retry_after_cap=1) as opened:
        yield opened


def test_the_client_is_bound_to_the_api_and_places_the_credential(client, upstream):
    assert str(client.base_url) == f"{upstream.base_url}/api/"
    answer = client.get("/items/42", params={"q": "from:ana"})
    assert answer.status_code == 200, answer.text
    assert answer.json()["path"] == "/api/items/42" and answer.json()["query"] == "q=from%3Aana"
    assert upstream.last("/items/42").headers["authorization"] == f"Bearer {KEY}"
    relative = client.get("items/43", headers={"Authorization": "Bearer caller"})
    assert relative.status_code == 200
    assert upstream.last("/items/43").headers["authorization"] == f"Bearer {KEY}"  # replaced


def test_timeouts_come_from_settings(vault, client):
    fields = Settings.model_fields
    assert client.timeout.connect == fields["proxy_connect_timeout"].default
    assert client.timeout.read == fields["proxy_read_timeout"].default
    assert client.follow_redirects is False
    with vault.http_client(*KEY_IDS, timeout=httpx.Timeout(3.0)) as other:
        assert other.timeout.read == 3.0


HOSTILE = [
    "http://evil.example/",
    "https://evil.example/api/x",
    "//evil.example/x",
    "../x",
    "/../x",
    "a/../../admin",
    "%2e%2e/admin",
    "..%2f..%2fadmin",
    "@evil.example/x",
    "%40evil.example",
    "%5cevil.example",
    "a/%00b",
    "a;b",
    "%EF%BC%8Fevil.example",
]


@pytest.mark.parametrize("hostile", HOSTILE)
def test_urls_that_could_leave_the_api_are_refused_before_anything_is_sent(
    client, upstream, hostile
):
    before = len(upstream.received)
    with pytest.raises(TargetRefused):
        client.get(hostile)
    assert len(upstream.received) == before


def test_a_request_built_elsewhere_is_checked_too(client, upstream):
    before = len(upstream.received)
    other_port = httpx.Request("GET", "http://127.0.0.1:1/api/x")
    with pytest.raises(TargetRefused) as caught:
        client.send(httpx.Request("GET", "http://evil.example/api/x"))
    assert caught.value.code == "host_not_allowed"
    with pytest.raises(TargetRefused):
        client.send(other_port)
    assert len(upstream.received) == before


def test_redirects_are_followed_only_to_the_providers_hosts(client, upstream):
    inside = client.get("/redirect", params={"to": f"{upstream.base_url}/api/items/7"})
    assert inside.status_code == 200 and inside.json()["path"] == "/api/items/7"
    assert upstream.last("/items/7").headers["authorization"] == f"Bearer {KEY}"
    before = len(upstream.received)
    for follow in (False, True):  # whatever the call asks
        with pytest.raises(TargetRefused) as caught:
            client.get("/redirect", params={"to": "http://evil.example/x"}, follow_redirects=follow)
        assert caught.value.code == "redirect_refused"
    assert len(upstream.received) == before + 2  # the two redirects, nothing else
    posted = client.post("/redirect", params={"to": "http://evil.example/x"}, content=b"{}")
    assert posted.status_code == 302  # another method's redirect: returned, not followed


def test_429_under_the_cap_is_waited_out_and_over_it_returned(client, upstream):
    upstream.busy["short"] = 1
    answer = client.get("/busy/short", params={"retry_after": "0"})
    assert answer.status_code == 200 and upstream.counts["busy/short"] == 2
    upstream.busy["long"] = 1
    refused = client.get("/busy/long", params={"retry_after": "30"})
    assert refused.status_code == 429 and refused.headers["retry-after"] == "30"
    assert upstream.counts["busy/long"] == 1
    upstream.busy["long"] = 0


def test_only_repeatable_requests_are_retried(client, upstream):
    upstream.busy["post"] = 1
    posted = client.post("/busy/post", params={"retry_after": "0"}, content=b"{}")
    assert posted.status_code == 429 and upstream.counts["busy/post"] == 1
    upstream.busy["keyed"] = 1
    keyed = client.post(
        "/busy/keyed",
        params={"retry_after": "0"},
        content=b"{}",
        headers={"Idempotency-Key": "k-1"},
    )
    assert keyed.status_code == 200 and upstream.counts["busy/keyed"] == 2
    upstream.busy["many"] = 5
    tired = client.get("/busy/many", params={"retry_after": "0"})  # two retries at most
    assert tired.status_code == 429 and upstream.counts["busy/many"] == 3
    upstream.busy["many"] = 0


def test_a_401_to_an_api_key_is_verified_and_returned(vault, client, upstream):
    upstream.refused.add(f"{KEY}")
    try:
        answer = client.get("/items/refused")
    finally:
        upstream.refused.discard(KEY)
    assert answer.status_code == 401
    assert upstream.counts["items/refused"] == 1  # not sent again: a key is not renewed
    assert upstream.last("/v1/models").headers["authorization"] == f"Bearer {KEY}"


def test_the_async_client_follows_the_same_rules(options, upstream):
    async def scenario() -> None:
        async with AsyncOAuthTokenCache(**options) as vault:  # type: ignore[arg-type]
            await vault.store_credentials(*KEY_IDS, {"api_key": KEY}, verify=False)
            client = await vault.http_client(*KEY_IDS, retry_after_cap=1)
            assert isinstance(client, httpx.AsyncClient)
            async with client:
                answer = await client.get("/items/async")
                assert answer.status_code == 200
                for hostile in ("http://evil.example/", "//evil.example/x", "../x"):
                    with pytest.raises(TargetRefused):
                        await client.get(hostile)
                with pytest.raises(TargetRefused):
                    await client.get("/redirect", params={"to": "https://evil.example/"})
                upstream.busy["async"] = 1
                busy = await client.get("/busy/async", params={"retry_after": "0"})
                assert busy.status_code == 200 and upstream.counts["busy/async"] == 2

    before = upstream.counts["redirect"]
    asyncio.run(scenario())
    assert upstream.last("/items/async").headers["authorization"] == f"Bearer {KEY}"
    assert upstream.counts["redirect"] == before + 1


# --- an OAuth connection: a 401 renewed once --------------------------------------------


@pytest.fixture
def oauth_options(op: OIDCServer, upstream: ProxyUpstream, options, tmp_path: Path):
    path = tmp_path / "providers.toml"
    path.write_text(local_provider_toml(op.issuer) + f'api_base_url = "{upstream.base_url}/api"\n')
    return {**options, "providers": load_provider_configs(path, {})}


def test_a_401_to_an_oauth_connection_is_renewed_once(op, grant, oauth_options, upstream):
    with OAuthTokenCache(**oauth_options) as vault:
        vault.store_tokens(*OAUTH_IDS, grant[0], grant[1], expires_in=3600, scope="openid")
        upstream.refused.add(grant[0])
        with vault.http_client(*OAUTH_IDS) as client:
            answer = client.get("/items/oauth", params={"n": "1"})
            assert answer.status_code == 200, answer.text
            renewed = upstream.last("/items/oauth").headers["authorization"]
            assert renewed != f"Bearer {grant[0]}"
            assert op.stats()["refresh_token"] == 1
            assert vault.get_access_token(*OAUTH_IDS) == renewed.removeprefix("Bearer ")
            # Renewed once: a second refusal goes back to the caller.
            again = client.get("/status/401")
            assert again.status_code == 401 and upstream.counts["status/401"] == 2
            assert op.stats()["refresh_token"] == 2


def test_a_streamed_body_is_not_sent_twice(op, grant, oauth_options, upstream):
    def chunks() -> Iterator[bytes]:
        yield b"part"

    with OAuthTokenCache(**oauth_options) as vault:
        vault.store_tokens(*OAUTH_IDS, grant[0], grant[1], expires_in=3600, scope="openid")
        upstream.refused.add(grant[0])
        with vault.http_client(*OAUTH_IDS) as client:
            answer = client.post("/upload-stream", content=chunks())
    assert answer.status_code == 401 and upstream.counts["upload-stream"] == 1
    assert op.stats().get("refresh_token", 0) == 0


def test_the_async_client_renews_a_401_once(op, grant, oauth_options, upstream):
    async def scenario() -> str:
        async with AsyncOAuthTokenCache(**oauth_options) as vault:
            await vault.store_tokens(
                *OAUTH_IDS, grant[0], grant[1], expires_in=3600, scope="openid"
            )
            async with await vault.http_client(*OAUTH_IDS) as client:
                answer = await client.put("/items/async-oauth", content=b'{"a": 1}')
                assert answer.status_code == 200, answer.text
                assert answer.json()["length"] == 8  # the body was sent again
            return await vault.get_access_token(*OAUTH_IDS)

    upstream.refused.add(grant[0])
    token = asyncio.run(scenario())
    assert upstream.last("/items/async-oauth").headers["authorization"] == f"Bearer {token}"
    assert upstream.counts["items/async-oauth"] == 2 and op.stats()["refresh_token"] == 1
