"""The API's constant headers and rate-limit headers: ``api_headers``, ``rate_limit_headers``
and ``rate_limit_reset`` in both catalogs and in provider tables (good and bad values), how
a proxied request's headers are merged, and how a 429's wait is read."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from oauthvault import ConfigError
from oauthvault.providers import load_catalog, load_provider_configs
from oauthvault.providers.api_targets import credential_target, provider_target
from oauthvault.providers.catalog import parse_catalog
from oauthvault.providers.credentials import load_credential_catalog, parse_credential_catalog
from oauthvault.providers.rate_limits import (
    RateLimitReset,
    outgoing_headers,
    reset_wait,
    retry_wait,
)

from tests.providers.test_api_base_urls import ENTRY

HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
}
NOW = datetime(2026, 6, 1, 12, 0, 0, tzinfo=UTC)


def acme(lines: str) -> str:
    return ENTRY.replace(
        'notes = "A made-up provider."',
        f'notes = "x"\napi_base_url = "https://api.acme.example"\n{lines}',
    )


def test_an_entry_declares_its_headers_and_rate_limits():
    spec = parse_catalog(
        acme(
            'api_headers = { Acme-Version = "2024-01-01", Accept = "application/vnd.acme+json" }\n'
            'rate_limit_headers = ["X-Acme-Remaining", "X-Acme-Reset"]\n'
            'rate_limit_reset = { header = "x-acme-reset", format = "epoch_ms" }\n'
        )
    )["acme"]
    assert dict(spec.api_headers) == {
        "Acme-Version": "2024-01-01",
        "Accept": "application/vnd.acme+json",
    }
    assert spec.rate_limit_headers == ("X-Acme-Remaining", "X-Acme-Reset")
    assert spec.rate_limit_reset == RateLimitReset("x-acme-reset", "epoch_ms")
    target = provider_target(spec, {})
    assert target is not None and dict(target.headers) == dict(spec.api_headers)
    assert target.rate_limit_reset == spec.rate_limit_reset


@pytest.mark.parametrize(
    ("lines", "key"),
    [
        ('api_headers = { Authorization = "Bearer x" }', "api_headers.Authorization"),
        ('api_headers = { cookie = "a=b" }', "api_headers.cookie"),
        ('api_headers = { Host = "evil.example" }', "api_headers.Host"),
        ('api_headers = { Transfer-Encoding = "chunked" }', "api_headers.Transfer-Encoding"),
        ('api_headers = { Connection = "close" }', "api_headers.Connection"),
        ('api_headers = { Content-Length = "1" }', "api_headers.Content-Length"),
        ('api_headers = { Oauthvault-Provider = "x" }', "api_headers.Oauthvault-Provider"),
        ('api_headers = { "Bad Name" = "x" }', "api_headers.Bad Name"),
        ('api_headers = { "X(y)" = "x" }', "api_headers.X(y)"),
        ('api_headers = { X-V = "a\\nb" }', "api_headers.X-V"),
        ('api_headers = { X-V = "a\\r" }', "api_headers.X-V"),
        ('api_headers = { X-V = "" }', "api_headers.X-V"),
        ('api_headers = { X-V = " padded" }', "api_headers.X-V"),
        ('api_headers = { X-V = "café" }', "api_headers.X-V"),
        ('api_headers = { X-V = "{token}" }', "api_headers.X-V"),
        ("api_headers = { X-V = 1 }", "api_headers.X-V"),
        ('api_headers = { X-V = "1", x-v = "2" }', "api_headers.x-v"),
        ("api_headers = {}", "api_headers"),
        ('api_headers = "X-V: 1"', "api_headers"),
        ('rate_limit_headers = ["Upgrade"]', "rate_limit_headers[0]"),
        ('rate_limit_headers = ["X-A", "x-a"]', "rate_limit_headers[1]"),
        ('rate_limit_headers = ["X A"]', "rate_limit_headers[0]"),
        ("rate_limit_headers = []", "rate_limit_headers"),
        ('rate_limit_headers = "X-A"', "rate_limit_headers"),
        ('rate_limit_reset = { header = "X-A", format = "epoch" }', "rate_limit_reset.header"),
        (
            'rate_limit_headers = ["X-A"]\nrate_limit_reset = { header = "X-B", format = "epoch" }',
            "rate_limit_reset.header",
        ),
        (
            'rate_limit_headers = ["X-A"]\nrate_limit_reset = { header = "X-A", format = "iso" }',
            "rate_limit_reset.format",
        ),
        (
            'rate_limit_headers = ["X-A"]\nrate_limit_reset = { header = "X-A" }',
            "rate_limit_reset.format",
        ),
        (
            'rate_limit_headers = ["Retry-After"]\n'
            'rate_limit_reset = { header = "Retry-After", format = "seconds" }',
            "rate_limit_reset.header",
        ),
        (
            'rate_limit_headers = ["X-A"]\n'
            'rate_limit_reset = { header = "X-A", format = "epoch", unit = "s" }',
            "rate_limit_reset.unit",
        ),
    ],
)
def test_bad_header_settings_are_refused_naming_the_setting(lines, key):
    with pytest.raises(ConfigError) as caught:
        parse_catalog(acme(lines))
    assert caught.value.setting == f"providers.toml: providers.acme.{key}"


def test_headers_need_an_api_base_url():
    for lines, key in [
        ('api_headers = { X-V = "1" }', "api_headers"),
        ('rate_limit_headers = ["X-A"]', "rate_limit_headers"),
    ]:
        document = ENTRY.replace('notes = "A made-up provider."', f'notes = "x"\n{lines}')
        with pytest.raises(ConfigError) as caught:
            parse_catalog(document)
        assert caught.value.setting == f"providers.toml: providers.acme.{key}"


def test_the_packaged_catalogs_hold_only_documented_formats():
    catalog = load_catalog()
    github = catalog["github"]
    assert dict(github.api_headers) == {
        "Accept": "application/vnd.github+json",
        "X-GitHub-Api-Version": "2022-11-28",
    }
    assert dict(catalog["notion"].api_headers) == {"Notion-Version": "2022-06-28"}
    assert github.rate_limit_reset == RateLimitReset("X-RateLimit-Reset", "epoch")
    assert catalog["calendly"].rate_limit_reset == RateLimitReset("X-RateLimit-Reset", "seconds")
    assert catalog["slack"].rate_limit_headers == ("Retry-After",)
    credentials = load_credential_catalog()
    assert credentials["github-pat"].rate_limit_reset == github.rate_limit_reset
    assert credentials["pagerduty-api-key"].rate_limit_reset == RateLimitReset(
        "ratelimit-reset", "seconds"
    )
    entries = [*catalog.values(), *credentials.values()]
    for entry in entries:
        names = {name.lower() for name in entry.rate_limit_headers}
        assert not names & HOP_BY_HOP, entry.name  # they reach the caller unchanged
        if entry.rate_limit_reset is not None:
            assert entry.rate_limit_reset.header.lower() in names
    for spec in catalog.values():
        if spec.api_headers:  # each one is cited in the notes
            assert spec.notes is not None and "API headers" in spec.notes, spec.name
        if spec.rate_limit_headers:
            assert spec.notes is not None and "Rate" in spec.notes, spec.name


CREDENTIAL = """
schema_version = 1
[providers.acme-key]
display_name = "Acme key"
auth = "api_key"
api_base_url = "https://api.acme.example"
docs_url = "https://acme.example/docs"
notes = "x"
{lines}
[[providers.acme-key.fields]]
name = "api_key"
label = "Key"
secret = true
[providers.acme-key.headers]
X-Api-Key = "{{api_key}}"
Acme-Version = "2024-01-01"
"""


def test_a_credential_entry_declares_rate_limits_and_its_constants_are_the_targets():
    lines = (
        'rate_limit_headers = ["X-Acme-Remaining", "X-Acme-Reset"]\n'
        'rate_limit_reset = { header = "X-Acme-Reset", format = "seconds" }'
    )
    spec = parse_credential_catalog(CREDENTIAL.format(lines=lines))["acme-key"]
    assert spec.rate_limit_reset == RateLimitReset("X-Acme-Reset", "seconds")
    assert spec.constant_headers == {"Acme-Version": "2024-01-01"}
    target = credential_target(spec, {}, {"api_key": "k"})
    assert dict(target.headers) == {"Acme-Version": "2024-01-01"}
    assert target.rate_limit_reset == spec.rate_limit_reset
    bad = 'rate_limit_headers = ["X-A"]\nrate_limit_reset = { header = "X-A", format = "ms" }'
    with pytest.raises(ConfigError) as caught:
        parse_credential_catalog(CREDENTIAL.format(lines=bad))
    assert caught.value.setting.endswith("providers.acme-key.rate_limit_reset.format")


def test_a_table_replaces_the_headers_and_rate_limits(tmp_path: Path):
    path = tmp_path / "oauthvault.toml"
    path.write_text(
        """
        [providers.github]
        client_id = "id"
        client_secret = "x"
        api_headers = { X-GitHub-Api-Version = "2026-03-10" }
        rate_limit_headers = ["RateLimit-Reset"]
        rate_limit_reset = { header = "RateLimit-Reset", format = "seconds" }

        [providers.corp]
        issuer = "https://login.corp.example"
        client_id = "id"
        client_secret = "x"
        api_base_url = "https://api.corp.example"
        api_headers = { Corp-Version = "3" }
        """
    )
    configs = load_provider_configs(path, {})
    github = configs["github"].spec
    assert dict(github.api_headers) == {"X-GitHub-Api-Version": "2026-03-10"}
    assert github.rate_limit_reset == RateLimitReset("RateLimit-Reset", "seconds")
    assert configs["corp"].overrides.api_headers == {"Corp-Version": "3"}


@pytest.mark.parametrize(
    ("table", "lines", "key"),
    [
        ("github", 'api_headers = { Authorization = "x" }', "api_headers.Authorization"),
        (
            "github",
            'api_headers = { Proxy-Authorization = "x" }',
            "api_headers.Proxy-Authorization",
        ),
        (
            "github",
            'rate_limit_reset = { header = "X-A", format = "epoch" }',
            "rate_limit_reset.header",
        ),
        ("corp", 'api_headers = { X-V = "1" }', "api_headers"),
        ("corp", 'rate_limit_headers = ["X-A"]', "rate_limit_headers"),
    ],
)
def test_bad_table_headers_name_the_setting(tmp_path: Path, table, lines, key):
    head = 'issuer = "https://login.corp.example"\n' if table == "corp" else ""
    path = tmp_path / "oauthvault.toml"
    path.write_text(f'[providers.{table}]\n{head}client_id = "i"\nclient_secret = "x"\n{lines}\n')
    with pytest.raises(ConfigError) as caught:
        load_provider_configs(path, {})
    assert caught.value.setting == f"{path}: providers.{table}.{key}"


def test_outgoing_headers_send_nothing_twice_and_let_the_caller_pin_a_constant():
    forwarded = [("Accept", "text/plain"), ("X-Custom", "kept"), ("x-api-key", "caller's")]
    constants = {"accept": "application/json", "Acme-Version": "1", "anthropic-version": "a"}
    credential = {"X-Api-Key": "secret", "anthropic-version": "2023-06-01"}
    sent = outgoing_headers(forwarded, constants, credential)
    names = [name.lower() for name, _ in sent]
    assert len(names) == len(set(names))
    assert dict(sent) == {
        "Accept": "text/plain",  # the caller's, not the constant
        "X-Custom": "kept",
        "X-Api-Key": "secret",  # the credential's; the caller's of that name is dropped
        "anthropic-version": "2023-06-01",  # a credential constant the caller did not send
        "Acme-Version": "1",
    }
    pinned = outgoing_headers([("Anthropic-Version", "2099-01-01")], constants, credential)
    assert dict(pinned) == {
        "Anthropic-Version": "2099-01-01",
        "X-Api-Key": "secret",
        "accept": "application/json",
        "Acme-Version": "1",
    }
    assert outgoing_headers([], {}, {"Authorization": "Bearer t"}) == [
        ("Authorization", "Bearer t")
    ]
    default = [("Accept", "*/*")]  # what HTTP clients send unasked
    assert dict(outgoing_headers(default, constants, {})) == dict(constants)
    assert outgoing_headers(default, {}, {}) == default


@pytest.mark.parametrize(
    ("rule", "value", "wait"),
    [
        (RateLimitReset("X-R", "epoch"), str(int(NOW.timestamp()) + 3), 3.0),
        (RateLimitReset("X-R", "epoch"), str(int(NOW.timestamp()) - 30), 0.0),  # passed
        (RateLimitReset("X-R", "epoch_ms"), str(int(NOW.timestamp() * 1000) + 1500), 1.5),
        (RateLimitReset("X-R", "seconds"), "4", 4.0),
        (RateLimitReset("X-R", "seconds"), " 4 ", 4.0),
        (RateLimitReset("X-R", "epoch"), "60", None),  # seconds where an epoch was documented
        (RateLimitReset("X-R", "epoch_ms"), str(int(NOW.timestamp())), None),
        (RateLimitReset("X-R", "seconds"), "1.5", None),
        (RateLimitReset("X-R", "seconds"), "-1", None),
        (RateLimitReset("X-R", "epoch"), "Tue, 05 Jan 2021 11:00:00 GMT", None),
        (RateLimitReset("X-R", "epoch"), "2026-06-01T12:00:03Z", None),
        (RateLimitReset("X-R", "seconds"), "٣", None),  # a non-ASCII digit
        (RateLimitReset("X-R", "seconds"), "9" * 40, None),
        (RateLimitReset("X-R", "seconds"), "", None),
        (RateLimitReset("X-R", "seconds"), None, None),
    ],
)
def test_a_reset_header_is_read_only_in_its_documented_format(rule, value, wait):
    assert reset_wait(rule, value, NOW) == wait


def test_retry_after_comes_first_and_the_reset_only_for_a_429():
    rule = RateLimitReset("X-RateLimit-Reset", "epoch")
    reset = str(int(NOW.timestamp()) + 2)
    both = httpx.Headers({"Retry-After": "1", "x-ratelimit-reset": reset})
    only_reset = httpx.Headers({"x-ratelimit-reset": reset})  # any case: httpx's headers
    assert retry_wait(429, both, rule, NOW) == 1.0
    assert retry_wait(429, only_reset, rule, NOW) == 2.0
    assert retry_wait(503, only_reset, rule, NOW) is None
    assert retry_wait(429, only_reset, None, NOW) is None
    date = httpx.Headers({"retry-after": "Mon, 01 Jun 2026 12:00:05 GMT"})
    assert retry_wait(429, date, None, NOW) == 5.0
    assert retry_wait(429, httpx.Headers({"retry-after": "soon"}), None, NOW) is None
