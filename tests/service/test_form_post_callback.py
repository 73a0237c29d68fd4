"""Issue 26 (3): what an anonymous ``POST /oauth/{provider}/callback`` can make the vault
hold is bounded: only providers that use ``form_post``, only the expected fields with size
limits, and a number of pending handles per address and in total."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from oauthvault import generate_key

from tests.helpers.service_harness import ConnectEnvironment, running_environment

FORM_POST = 'issuer = "{issuer}"\nextra_authorize_params = { response_mode = "form_post" }'
STATE = "s" * 43


def form_post_site(directory, postgres_url, redis_url, **options):
    return running_environment(
        directory,
        postgres_url,
        redis_url,
        generate_key(),
        auto_approve=True,
        provider_settings=FORM_POST,
        **options,
    )


@pytest.fixture(scope="module")
def site(tmp_path_factory, postgres_url, _redis_checked) -> Iterator[ConnectEnvironment]:
    """The service with ``local`` posting its callback (``response_mode=form_post``)."""
    directory = tmp_path_factory.mktemp("form_post")
    with form_post_site(directory, postgres_url, _redis_checked) as environment:
        yield environment


@pytest.fixture
def bounded_site(tmp_path_factory, postgres_url, _redis_checked) -> Iterator[ConnectEnvironment]:
    """The same, with a total bound below what two addresses may hold each."""
    with form_post_site(
        tmp_path_factory.mktemp("bounded"),
        postgres_url,
        _redis_checked,
        service_settings="held_callbacks_per_address = 10\nheld_callbacks_total = 15",
    ) as environment:
        yield environment


def pending_bytes(raw_redis) -> int:
    return sum(raw_redis.memory_usage(name) or 0 for name in raw_redis.scan_iter("oauth:pending:*"))


def post(base_url: str, fields: dict[str, str], *, source: str = "127.0.0.1") -> httpx.Response:
    transport = httpx.HTTPTransport(local_address=source)
    with httpx.Client(transport=transport, base_url=base_url) as client:
        return client.post("/oauth/local/callback", data=fields)


def test_a_provider_that_does_not_post_its_callback_is_refused(env, raw_redis):
    answer = post(env.base_url, {"code": "c", "state": STATE})
    assert answer.status_code == 400
    assert "Connection failed" in answer.text
    assert list(raw_redis.scan_iter("oauth:pending:*")) == []


def test_the_default_bound_per_address_is_ten(site, raw_redis):
    answers = [post(site.base_url, {"state": STATE}, source="127.0.0.9").status_code]
    answers += [
        post(site.base_url, {"state": STATE}, source="127.0.0.9").status_code for _ in range(10)
    ]
    assert answers.count(303) == 10 and answers[-1] == 429


def test_only_the_expected_fields_are_kept(site, raw_redis):
    answer = post(site.base_url, {"code": "c", "state": STATE, "junk": "x" * 16_000})
    assert answer.status_code == 303
    assert "resume=" in answer.headers["location"]
    assert pending_bytes(raw_redis) < 2_000  # "junk" was dropped


def test_an_oversized_field_is_refused_and_nothing_is_kept(site, raw_redis):
    answer = post(site.base_url, {"code": "c" * 10_000, "state": STATE})
    assert answer.status_code == 400
    assert list(raw_redis.scan_iter("oauth:pending:*")) == []


def test_pending_handles_are_bounded_per_address_and_in_total(bounded_site, raw_redis):
    site = bounded_site
    before = pending_bytes(raw_redis)
    fields = {"code": "c" * 2048, "state": STATE, "error_description": "d" * 1024}
    answers = [post(site.base_url, fields).status_code for _ in range(300)]
    assert answers.count(303) == 10 and answers.count(429) == 290
    grown = pending_bytes(raw_redis) - before
    assert grown < 1_000_000  # it was 39.5 MB for 300 posts of 64 KB
    # Another address has its own share, up to the total.
    others = [post(site.base_url, fields, source="127.0.0.2").status_code for _ in range(10)]
    assert others.count(303) == 5 and others.count(429) == 5
    refused = post(site.base_url, fields, source="127.0.0.3")
    assert refused.status_code == 429
    assert refused.headers["retry-after"] == "60"
