"""The API proxy (``/v1/proxy/{path}``) against a loopback provider API: the credential
placed and the caller's own headers never sent, hostile paths refused with nothing sent,
redirects only to the provider's hosts, the vault's refusals told apart from the
provider's answers, 401 → one refresh → retry (50 concurrent calls, one grant), 429 waited
out under the cap and returned over it, and bodies streamed both ways with flat memory."""

from __future__ import annotations

import http.client
import threading
import time
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import pytest

from oauthvault import generate_key

from tests.helpers.proxy_upstream import ProxyUpstream
from tests.helpers.service_harness import ConnectEnvironment, connect, outcome, running_environment

KEY = "sk-" + "P" * 40
WS = "ws_proxy"


@pytest.fixture(scope="module")
def upstream() -> Iterator[ProxyUpstream]:
    with ProxyUpstream() as api:
        yield api


@pytest.fixture(scope="module")
def service(
    upstream: ProxyUpstream,
    tmp_path_factory: pytest.TempPathFactory,
    postgres_url: str,
    _redis_checked: str,
) -> Iterator[ConnectEnvironment]:
    extra = (
        f'[credentials.openai]\napi_base_url = "{upstream.base_url}/api"\n'
        # https on a loopback name: not an explicit loopback test double, so refused
        f'[credentials.anthropic]\napi_base_url = "https://localhost:{upstream.port}/api"\n'
    )
    local = f'issuer = "{{issuer}}"\napi_base_url = "{upstream.base_url}/api"'
    directory: Path = tmp_path_factory.mktemp("proxy")
    with running_environment(
        directory,
        postgres_url,
        _redis_checked,
        generate_key(),
        auto_approve=True,
        extra_config=extra,
        provider_settings=local,
        service_settings="",
    ) as environment:
        with environment.api() as api:
            stored = api.put(
                "/v1/credentials",
                json={
                    "provider": "openai",
                    "workspace_id": WS,
                    "actor_id": "key-user",
                    "credentials": {"api_key": KEY},
                },
            )
            assert stored.status_code == 201, stored.text
        yield environment


def names(provider: str = "openai", actor: str = "key-user") -> dict[str, str]:
    return {
        "Oauthvault-Provider": provider,
        "Oauthvault-Workspace-Id": WS,
        "Oauthvault-Actor-Id": actor,
    }


def test_the_credential_is_placed_and_the_callers_own_headers_are_not_sent(service, upstream):
    with service.api() as http:
        answer = http.get(
            "/v1/proxy/items/42",
            params={"q": "from:ana"},
            headers={**names(), "Cookie": "session=caller", "X-Custom": "kept"},
        )
    assert answer.status_code == 200, answer.text
    assert answer.json()["path"] == "/api/items/42" and answer.json()["query"] == "q=from%3Aana"
    assert "set-cookie" not in answer.headers and answer.headers["x-upstream"] == "yes"
    assert "oauthvault-error" not in answer.headers
    sent = upstream.last("/items/42")
    assert sent.headers["authorization"] == f"Bearer {KEY}"
    assert service.api_key not in str(sent.headers)
    assert "cookie" not in sent.headers and sent.headers["x-custom"] == "kept"
    assert not any(name.startswith("oauthvault-") for name in sent.headers)


def test_repeated_headers_pass_whole_and_the_vaults_marker_cannot_be_forged(service, upstream):
    with service.api() as http:
        answer = http.get("/v1/proxy/multi", headers=names())
    assert answer.status_code == 200
    assert answer.headers.get_list("link") == [
        "<https://api.example/p2>; rel=next",
        "<https://api.example/p9>; rel=last",
    ]
    assert "oauthvault-error" not in answer.headers


def test_the_vaults_refusals_are_problems_the_providers_answers_pass_through(service, upstream):
    with service.api() as http:
        missing = http.get("/v1/proxy/items", headers=names(actor="nobody"))
        unnamed = http.get("/v1/proxy/items")
        provider_404 = http.get("/v1/proxy/status/404", headers=names())
    assert missing.status_code == 404 and missing.headers["oauthvault-error"] == "not_found"
    assert missing.headers["content-type"] == "application/problem+json"
    assert (
        unnamed.status_code == 400 and unnamed.headers["oauthvault-error"] == "missing_connection"
    )
    assert provider_404.status_code == 404 and "oauthvault-error" not in provider_404.headers
    assert provider_404.json() == {"status": 404}
    with service.api(service.other_workspace_key) as http:
        other = http.get("/v1/proxy/items", headers=names())
    assert other.status_code == 403 and other.headers["oauthvault-error"] == "forbidden"


HOSTILE = [
    "//evil.example/x",
    "http://evil.example/x",
    "@evil.example/x",
    "%2F%2Fevil.example/x",
    "..%2f..%2fadmin",
    "%2e%2e/admin",
    "a/../../admin",
    "%5cevil.example",
    "a/%00b",
    "%40evil.example",
    "%EF%BC%8Fevil.example",
]


@pytest.mark.parametrize("hostile", HOSTILE)
def test_hostile_paths_are_refused_before_anything_is_sent(service, upstream, hostile):
    before = len(upstream.received)
    host = service.base_url.removeprefix("http://")
    connection = http.client.HTTPConnection(host, timeout=10)
    try:  # sent as written: an HTTP client would normalise some of these paths
        headers = {**names(), "Authorization": f"Bearer {service.api_key}"}
        connection.request("GET", f"/v1/proxy/{hostile}", headers=headers)
        answer = connection.getresponse()
        body = answer.read()
    finally:
        connection.close()
    assert answer.status == 400, body
    assert answer.getheader("oauthvault-error") == "target_refused", body
    assert len(upstream.received) == before


def test_a_host_resolving_to_a_private_address_is_refused_with_nothing_sent(service, upstream):
    before = len(upstream.received)
    with service.api() as http:
        stored = http.put(
            "/v1/credentials",
            json={
                "provider": "anthropic",
                "workspace_id": WS,
                "actor_id": "key-user",
                "credentials": {"api_key": "sk-ant-" + "Q" * 40},
                "verify": False,
            },
        )
        assert stored.status_code == 201, stored.text
        answer = http.get("/v1/proxy/v1/models", headers=names("anthropic"))
    assert answer.status_code == 502 and answer.headers["oauthvault-error"] == "host_refused"
    assert len(upstream.received) == before


def test_another_api_host_must_be_the_providers(service, upstream):
    before = len(upstream.received)
    with service.api() as http:
        refused = http.get(
            "/v1/proxy/items", headers={**names(), "Oauthvault-Api-Host": "evil.example"}
        )
        same = http.get("/v1/proxy/items", headers={**names(), "Oauthvault-Api-Host": "127.0.0.1"})
    assert refused.status_code == 400 and refused.headers["oauthvault-error"] == "target_refused"
    assert refused.json()["reason"] == "host_not_allowed"
    assert same.status_code == 200  # the base URL's own host
    assert len(upstream.received) == before + 1


def test_redirects_are_followed_only_to_the_providers_hosts(service, upstream):
    with service.api() as http:
        away = http.get(
            "/v1/proxy/redirect", params={"to": "http://evil.example/steal"}, headers=names()
        )
        home = http.get(
            "/v1/proxy/redirect", params={"to": f"{upstream.base_url}/api/landed"}, headers=names()
        )
    assert away.status_code == 502 and away.headers["oauthvault-error"] == "redirect_refused"
    assert home.status_code == 200 and home.json()["path"] == "/api/landed"


def test_a_rate_limit_is_waited_out_under_the_cap_and_returned_over_it(service, upstream):
    upstream.busy["short"] = 1
    upstream.busy["long"] = 1
    upstream.busy["post"] = 1
    with service.api() as http:
        short = http.get("/v1/proxy/busy/short", params={"retry_after": "1"}, headers=names())
        long = http.get("/v1/proxy/busy/long", params={"retry_after": "30"}, headers=names())
        posted = http.post(
            "/v1/proxy/busy/post", params={"retry_after": "1"}, headers=names(), content=b"{}"
        )
    assert short.status_code == 200 and upstream.counts["busy/short"] == 2
    assert long.status_code == 429 and long.headers["oauthvault-retry-after"] == "30"
    assert upstream.counts["busy/long"] == 1
    assert posted.status_code == 429 and upstream.counts["busy/post"] == 1  # not idempotent


def test_a_401_refreshes_once_and_retries_even_for_fifty_calls_at_once(service, upstream):
    assert outcome(connect(service, WS, "oauth-user"))["oauthvault_status"] == "connected"
    with service.api() as http:
        token = http.get(
            "/v1/connections/token",
            params={"provider": "local", "workspace_id": WS, "actor_id": "oauth-user"},
        ).json()["access_token"]
    upstream.refused.add(token)  # the provider no longer takes it
    before = service.provider.stats().get("refresh_token", 0)
    answers: list[int] = []

    def call() -> None:
        with service.api() as http:
            answers.append(
                http.get("/v1/proxy/items", headers=names("local", "oauth-user")).status_code
            )

    threads = [threading.Thread(target=call) for _ in range(50)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert answers == [200] * 50
    assert service.provider.stats().get("refresh_token", 0) == before + 1


@pytest.mark.once  # bytes through sockets: the same on every Python, run on the first only
def test_a_large_download_streams_with_flat_memory(service, upstream):
    tracemalloc.start()
    try:
        received = 0
        with (
            service.api() as http,
            http.stream("GET", "/v1/proxy/big/256", headers=names(), timeout=120) as answer,
        ):
            assert answer.status_code == 200
            for chunk in answer.iter_raw():
                received += len(chunk)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert received == 256 * 1_048_576
    assert peak < 50 * 1_048_576, peak


@pytest.mark.slow  # a gibibyte through two hops
@pytest.mark.once
def test_a_gibibyte_download_streams_with_flat_memory(service, upstream):
    tracemalloc.start()
    try:
        received = 0
        with (
            service.api() as http,
            http.stream("GET", "/v1/proxy/big/1024", headers=names(), timeout=300) as answer,
        ):
            for chunk in answer.iter_raw():
                received += len(chunk)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert received == 1024 * 1_048_576
    assert peak < 50 * 1_048_576, peak


def test_a_caller_that_goes_away_cancels_the_upstream_request(service, upstream):
    size = 1000 * 1_048_576  # a size no other test asks for

    def ended() -> list[int]:
        return [sent for asked, sent in upstream.streamed if asked == size]

    with (
        service.api() as http,
        http.stream("GET", "/v1/proxy/big/1000", headers=names(), timeout=60) as answer,
    ):
        taken = 0
        for chunk in answer.iter_raw():
            taken += len(chunk)
            if taken > 4 * 1_048_576:
                break  # the caller closes its connection here
    deadline = time.monotonic() + 15
    while not ended() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert ended(), "the upstream download was not ended"
    assert ended()[0] < size // 2


def test_a_refused_api_key_is_verified_and_marked_needs_reauth(service, upstream):
    key = "sk-" + "R" * 40
    with service.api() as http:
        stored = http.put(
            "/v1/credentials",
            json={
                "provider": "openai",
                "workspace_id": WS,
                "actor_id": "revoked",
                "credentials": {"api_key": key},
            },
        )
        assert stored.status_code == 201, stored.text
        upstream.refused.add(key)
        try:
            answer = http.get("/v1/proxy/items", headers=names(actor="revoked"))
        finally:
            upstream.refused.discard(key)
        listing = http.get("/v1/connections", params={"workspace_id": WS})
    assert answer.status_code == 401 and "oauthvault-error" not in answer.headers
    [row] = [row for row in listing.json() if row["actor_id"] == "revoked"]
    assert row["status"] == "needs_reauth"


@pytest.mark.once
def test_a_large_upload_streams_through(service, upstream):
    size = 64 * 1_048_576

    def chunks() -> Iterator[bytes]:
        block = b"u" * 65_536
        for _ in range(size // len(block)):
            yield block

    with service.api() as http:
        answer = http.post("/v1/proxy/upload", headers=names(), content=chunks(), timeout=120)
        announced = http.post(
            "/v1/proxy/upload",
            headers={**names(), "Content-Length": str(size)},
            content=chunks(),
            timeout=120,
        )
    assert answer.status_code == 200, answer.text
    assert answer.json()["received"] == size and answer.json()["chunked"] == "chunked"
    assert upstream.upload_chunks > 1  # it arrived as it was sent, not as one buffer
    # A length the caller announced is kept: not turned into a chunked upload.
    assert announced.json() == {"received": size, "length": str(size), "chunked": None}


def test_no_secret_in_the_logs(service, upstream, caplog):
    caplog.set_level("DEBUG")
    with service.api() as http:
        http.get("/v1/proxy/items", headers=names())
    assert KEY not in caplog.text and service.api_key not in caplog.text
