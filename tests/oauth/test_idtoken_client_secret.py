"""Issue 25 (8): a provider that signs id_tokens with the client secret (HS256, OIDC Core
§10.1), as django-oauth-toolkit may, connects; the real oidc-provider signs this module's
client's id_tokens that way (``id_token_signed_response_alg = HS256``)."""

from __future__ import annotations

import json

import httpx
import pytest

from tests.helpers.service_harness import connect, outcome

SECRET = "a-client-secret-long-enough-for-hs256-at-oidc-provider"

pytestmark = pytest.mark.env_options(
    client_options={"client_secret": SECRET, "id_token_signed_response_alg": "HS256"}
)


def test_the_provider_advertises_hs256(env):
    document = httpx.get(f"{env.provider.issuer}/.well-known/openid-configuration").json()
    assert "HS256" in document["id_token_signing_alg_values_supported"]


def test_an_hs256_id_token_connects(env, pg):
    result = outcome(connect(env, "ws_hs", "alice"))
    assert result == {"oauthvault_status": "connected", "oauthvault_provider": "local"}
    with env.api() as api:
        body = api.get(
            "/v1/connections/token",
            params={"provider": "local", "workspace_id": "ws_hs", "actor_id": "alice"},
        ).json()
    assert body["access_token"]
    # It really was an HS256 id_token (the provider's grant log shows the exchange).
    assert env.provider.stats().get("authorization_code_ok", 0) >= 1
    assert json.dumps(body).count(SECRET) == 0
