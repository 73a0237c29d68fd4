"""Issue 26 (10): the return-URL prefix cannot be escaped with dot segments or encoded
separators, plain or percent-encoded."""

from __future__ import annotations

import pytest

from oauthvault.service.returns import ReturnUrlPolicy

POLICY = ReturnUrlPolicy(["https://app.example.com/settings/"])


@pytest.mark.parametrize(
    "url",
    [
        "https://app.example.com/settings/%2e%2e/%2e%2e/redirect?to=https://evil.example",
        "https://app.example.com/settings/%2E%2E/admin",
        "https://app.example.com/settings/.%2e/admin",
        "https://app.example.com/settings/../admin",
        "https://app.example.com/settings/./../admin",
        "https://app.example.com/settings/x/../../admin",
        "https://app.example.com/settings/%2e",
        "https://app.example.com/settings/..",
        "https://app.example.com/settings/..%2fadmin",
        "https://app.example.com/settings/%2E%2E%2Fadmin",
        "https://app.example.com/settings/..%5cadmin",
    ],
)
def test_a_return_url_escaping_its_prefix_is_refused(url):
    assert not POLICY.allows(url)


@pytest.mark.parametrize(
    "url",
    [
        "https://app.example.com/settings/done",
        "https://app.example.com/settings/v1.2/done..html",
        "https://app.example.com/settings/...",
        "https://app.example.com/settings/done?next=../x",
    ],
)
def test_dots_that_are_not_dot_segments_are_allowed(url):
    assert POLICY.allows(url)


def test_an_allowed_entry_with_a_dot_segment_is_a_config_error():
    with pytest.raises(ValueError, match="allowed return URL"):
        ReturnUrlPolicy(["https://app.example.com/a/../settings/"])
