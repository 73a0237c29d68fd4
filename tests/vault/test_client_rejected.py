"""The provider refusing the app's own client (``invalid_client``): a configuration error
of the app, said so, logged, and not sent again until the configuration changes or a
backoff passes. Against the real local provider with a wrong client secret."""

from __future__ import annotations

import dataclasses
import logging

import pytest

from oauthvault import ClientRejected, OAuthTokenCache, ProviderError
from oauthvault.oauth.token_request import GrantResult, provider_text
from oauthvault.providers.config import ProviderConfig, load_provider_configs
from oauthvault.vault.client_refusals import ClientRefusals, client_fingerprint

from tests.vault.test_refresh import IDS, store_expiring


def _table(op, secret: str) -> str:
    return (
        "[providers.local]\n"
        f'authorization_endpoint = "{op.issuer}/auth"\n'
        f'token_endpoint = "{op.issuer}/token"\n'
        f'client_id = "test-client"\nclient_secret = "{secret}"\n'
    )


def test_a_refused_client_is_said_logged_and_not_sent_again(
    op, grant, pg, postgres_url, key, tmp_path, caplog
):
    wrong = tmp_path / "wrong.toml"
    wrong.write_text(_table(op, "not-the-secret"))
    backend = (postgres_url, None)
    store_expiring(backend, key, grant, left=0)
    caplog.set_level(logging.WARNING, logger="oauthvault")
    providers = load_provider_configs(wrong, {})
    with OAuthTokenCache(postgres_url, "", key, providers=providers) as vault:
        with pytest.raises(ClientRejected) as first:
            vault.get_access_token(*IDS)
        assert first.value.error == "invalid_client"
        assert first.value.error_description  # the provider's own words, kept
        with pytest.raises(ClientRejected) as second:
            vault.get_access_token(*IDS)
        assert "not sent" in (second.value.error_description or "")
        [listed] = vault.list_connections(workspace_id=IDS[1])
    assert op.stats().get("refresh_token") == 1  # the second read sent nothing
    assert listed.status == "degraded"
    assert listed.last_error is not None and listed.last_error.startswith("invalid_client: ")
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("invalid_client" in message for message in warnings), warnings
    assert not any("not-the-secret" in message for message in warnings)
    # The configuration fixed (another vault, the right secret): sent at once, and it works.
    right = tmp_path / "right.toml"
    right.write_text(_table(op, "test-secret"))
    with OAuthTokenCache(
        postgres_url, "", key, providers=load_provider_configs(right, {})
    ) as vault:
        assert vault.get_access_token(*IDS) != grant[0]
        [listed] = vault.list_connections(workspace_id=IDS[1])
    assert listed.status == "active" and listed.last_error is None


def test_a_refusal_is_held_until_the_backoff_passes_or_the_configuration_changes():
    config = ProviderConfig("acme", None, "client-1")
    changed = dataclasses.replace(config, client_id="client-2")
    refusals = ClientRefusals(backoff=300)
    refused = GrantResult("config", error="invalid_client", description="bad secret")
    refusals.record("acme", client_fingerprint(config), refused, now=1000)
    held = refusals.held("acme", client_fingerprint(config), now=1100)
    assert held is not None and held.error == "invalid_client"
    assert held.description is not None and "not sent" in held.description
    assert "bad secret" in held.description
    assert refusals.held("acme", client_fingerprint(changed), now=1100) is None
    assert refusals.held("acme", client_fingerprint(config), now=1300) is None
    assert refusals.held("other", client_fingerprint(config), now=1100) is None
    refusals.record("acme", client_fingerprint(config), GrantResult("transient"), now=1200)
    assert refusals.held("acme", client_fingerprint(config), now=1201) is not None
    refusals.record("acme", client_fingerprint(config), GrantResult("ok"), now=1200)
    assert refusals.held("acme", client_fingerprint(config), now=1201) is None
    assert "client-1" not in client_fingerprint(config)


def test_unauthorized_client_is_a_refusal_of_the_client_too():
    from oauthvault.oauth.token_request import classify_failure, is_client_refusal

    result = classify_failure(400, "unauthorized_client", None, retry_safe=True)
    assert result.outcome == "config" and is_client_refusal(result)
    assert not is_client_refusal(classify_failure(400, "invalid_grant", None, retry_safe=True))


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("Client authentication failed", "Client authentication failed"),
        ("line one\r\n\tline two\x00\x1b[31m", "line one line two [31m"),
        ("refresh token rt-123 is revoked", "refresh token [redacted] is revoked"),
        ("token " + "A" * 40 + " expired", "token [redacted] expired"),
        ("", None),
        (None, None),
        (42, None),
    ],
)
def test_provider_text_is_made_fit_to_show(raw, shown):
    assert provider_text(raw, ("rt-123",)) == shown


def test_provider_text_is_bounded():
    text = provider_text("word " * 100)
    assert text is not None and len(text) == 200 and text.endswith("\u2026")


def test_a_waiter_after_a_refused_client_gets_the_refusal():
    """The refusal recorded by another caller's refresh is what a waiter answers with,
    once the current token has expired (it sends nothing itself)."""
    from datetime import UTC, datetime

    from oauthvault.models import TokenKey, TokenSet
    from oauthvault.vault import refresh

    expired = TokenSet("at", "rt", datetime(2020, 1, 1, tzinfo=UTC), None)
    now = datetime.now(UTC)
    key = TokenKey(*IDS)
    with pytest.raises(ClientRejected) as caught:
        refresh._after_failed_refresh(key, expired, "invalid_client: bad secret", now)  # noqa: SLF001 - the waiter's answer, pure
    assert caught.value.error_description == "bad secret"
    with pytest.raises(ProviderError) as other:
        refresh._after_failed_refresh(key, expired, "http_503", now)  # noqa: SLF001 - as above
    assert "http_503" in str(other.value)
