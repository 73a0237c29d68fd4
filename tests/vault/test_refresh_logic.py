"""The refresh flow's pure parts: classification, merging answers, backoff."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from oauthvault import InvalidInput, TokenSet
from oauthvault.oauth.refresh_grant import classify_failure
from oauthvault.vault.refresh import RetryPolicy, is_fresh, merge_answer

NOW = datetime(2030, 1, 1, tzinfo=UTC)
CURRENT = TokenSet("old-access", "old-refresh", NOW + timedelta(seconds=30), "read")


@pytest.mark.parametrize(
    ("status", "error", "outcome"),
    [
        (400, "invalid_grant", "reauth"),
        (400, "unauthorized_client", "reauth"),
        (401, "invalid_client", "config"),
        (400, "invalid_request", "config"),
        (400, "something_new", "config"),
        (503, "temporarily_unavailable", "transient"),
        (500, None, "transient"),
        (429, "slow_down", "transient"),
        (None, None, "transient"),
    ],
)
def test_failures_are_classified(status, error, outcome):
    assert classify_failure(status, error, None, retry_safe=True).outcome == outcome


def test_a_request_that_may_have_arrived_is_not_retry_safe():
    result = classify_failure(None, "no_answer", "ReadTimeout", retry_safe=False)
    assert result.outcome == "transient" and not result.retry_safe


def test_a_rotated_refresh_token_replaces_the_old_one():
    merged = merge_answer(
        CURRENT, {"access_token": "new", "refresh_token": "rotated", "expires_in": 3600}, NOW
    )
    assert merged == TokenSet("new", "rotated", NOW + timedelta(hours=1), "read")


def test_without_a_new_refresh_token_the_old_one_is_kept():
    merged = merge_answer(
        CURRENT, {"access_token": "new", "expires_in": "60", "scope": "read write"}, NOW
    )
    assert merged.refresh_token == "old-refresh"
    assert merged.expires_at == NOW + timedelta(seconds=60)
    assert merged.scope == "read write"


@pytest.mark.parametrize(
    "answer",
    [
        {},
        {"access_token": ""},
        {"access_token": 42},
        {"access_token": "new", "expires_in": -5},
        {"access_token": "new", "expires_in": "soon"},
        {"access_token": "bad\nvalue"},
    ],
)
def test_a_malformed_answer_is_refused_so_nothing_is_overwritten(answer):
    with pytest.raises(InvalidInput):
        merge_answer(CURRENT, answer, NOW)


def test_freshness():
    assert is_fresh(CURRENT, NOW, 30)
    assert not is_fresh(CURRENT, NOW, 31)
    assert is_fresh(TokenSet("a", None, None, None), NOW, 10_000)


def test_backoff_grows_with_jitter_and_a_ceiling():
    policy = RetryPolicy(base_delay=0.2, max_delay=1.0)
    for attempt, ceiling in ((0, 0.2), (1, 0.4), (2, 0.8), (5, 1.0)):
        for _ in range(50):
            assert ceiling / 2 <= policy.delay(attempt) <= ceiling
