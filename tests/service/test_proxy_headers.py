"""The API proxy's constant and rate-limit headers against a loopback provider API: an
app's ``api_headers`` sent unless the caller sent the same header, a credential entry's
constant ``[headers]`` likewise and its credential header never twice, rate-limit headers
passed back, and a 429 without ``Retry-After`` waited out on the documented reset header
(``rate_limit_reset``) under the cap, returned over it."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from oauthvault import generate_key

from tests.helpers.proxy_upstream import ProxyUpstream
from tests.helpers.service_harness import ConnectEnvironment, connect, outcome, running_environment

KEY = "sk-ant-" + "H" * 40
WS = "ws_proxy_headers"


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
    extra = f'[credentials.anthropic]\napi_base_url = "{upstream.base_url}/api"\n'
    local = (
        f'issuer = "{{issuer}}"\napi_base_url = "{upstream.base_url}/api"\n'
        'api_headers = { Local-Version = "2024-01-01", Accept = "application/vnd.local+json" }\n'
        'rate_limit_headers = ["X-Rate-Remaining", "X-Rate-Reset"]\n'
        'rate_limit_reset = { header = "X-Rate-Reset", format = "epoch" }'
    )
    directory: Path = tmp_path_factory.mktemp("proxy_headers")
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
                    "provider": "anthropic",
                    "workspace_id": WS,
                    "actor_id": "key-user",
                    "credentials": {"api_key": KEY},
                },
            )
            assert stored.status_code == 201, stored.text
        assert outcome(connect(environment, WS, "oauth-user"))["oauthvault_status"] == "connected"
        yield environment


def names(provider: str = "local", actor: str = "oauth-user") -> dict[str, str]:
    return {
        "Oauthvault-Provider": provider,
        "Oauthvault-Workspace-Id": WS,
        "Oauthvault-Actor-Id": actor,
    }


def test_the_apps_api_headers_are_sent_unless_the_caller_sent_them(service, upstream):
    with service.api() as http:
        plain = http.get("/v1/proxy/versions/plain", headers=names())
        pinned = http.get(
            "/v1/proxy/versions/pinned",
            headers={**names(), "local-version": "2026-03-11", "X-Custom": "kept"},
        )
    assert plain.status_code == 200 and pinned.status_code == 200, (plain.text, pinned.text)
    sent = upstream.last("/versions/plain").headers
    assert sent["local-version"] == "2024-01-01"
    assert sent["accept"] == "application/vnd.local+json"
    assert sent["authorization"].startswith("Bearer ")
    sent = upstream.last("/versions/pinned").headers  # the caller's version, once
    assert sent["local-version"] == "2026-03-11" and sent["x-custom"] == "kept"
    assert sent["accept"] == "application/vnd.local+json"


def test_a_credentials_constant_header_may_be_pinned_its_key_never_sent_twice(service, upstream):
    actor = names("anthropic", "key-user")
    with service.api() as http:
        plain = http.get("/v1/proxy/claude/plain", headers=actor)
        pinned = http.get(
            "/v1/proxy/claude/pinned",
            headers={**actor, "Anthropic-Version": "2099-01-01", "X-Api-Key": "sk-ant-caller"},
        )
    assert plain.status_code == 200 and pinned.status_code == 200, (plain.text, pinned.text)
    sent = upstream.last("/claude/plain").headers
    assert sent["x-api-key"] == KEY and sent["anthropic-version"] == "2023-06-01"
    sent = upstream.last("/claude/pinned").headers
    assert sent["x-api-key"] == KEY  # the caller's x-api-key is not sent: one value only
    assert sent["anthropic-version"] == "2099-01-01"
    assert "local-version" not in sent  # another provider's constants stay there


def test_rate_limit_headers_pass_back_and_a_documented_reset_is_waited_out(service, upstream):
    upstream.busy["soon"] = 1
    reset = str(int(time.time()) + 2)
    started = time.monotonic()
    with service.api() as http:
        answer = http.get(
            "/v1/proxy/reset/soon",
            params={"header": "X-Rate-Reset", "value": reset},
            headers=names(),
        )
    assert answer.status_code == 200, answer.text
    assert answer.headers["x-rate-remaining"] == "9"  # the provider's own, passed back
    assert upstream.counts["reset/soon"] == 2
    assert time.monotonic() - started >= 0.5  # waited for the reset, not sent again at once


def test_a_reset_over_the_cap_or_in_another_format_goes_back_at_once(service, upstream):
    upstream.busy["late"] = 1
    upstream.busy["odd"] = 1
    with service.api() as http:
        late = http.get(
            "/v1/proxy/reset/late",
            params={"header": "X-Rate-Reset", "value": str(int(time.time()) + 60)},
            headers=names(),
        )
        odd = http.get(  # a date where epoch seconds are documented: not read
            "/v1/proxy/reset/odd",
            params={"header": "X-Rate-Reset", "value": "Tue, 05 Jan 2021 11:00:00 GMT"},
            headers=names(),
        )
    assert late.status_code == 429 and "oauthvault-error" not in late.headers
    assert 55 <= int(late.headers["oauthvault-retry-after"]) <= 61
    assert late.headers["x-rate-remaining"] == "0" and late.headers["x-rate-reset"]
    assert upstream.counts["reset/late"] == 1
    assert odd.status_code == 429 and "oauthvault-retry-after" not in odd.headers
    assert upstream.counts["reset/odd"] == 1
