"""Smoke test for the local OpenID Connect provider used by the integration tests.

Deliberately not skipped when node/npm are missing: the fixture then errors, failing the run.
"""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import httpx
import pytest

from tests.helpers.oidc_client import (
    CLIENT_AUTH,
    assert_invalid_grant,
    authorize,
    discover,
    introspect,
    redeem,
    refresh,
)
from tests.helpers.oidc_server import OIDCServer

ACCESS_TOKEN_TTL = 2

pytestmark = pytest.mark.op_options(ttl={"AccessToken": ACCESS_TOKEN_TTL})


@pytest.fixture(scope="module")
def meta(op: OIDCServer) -> dict[str, Any]:
    return discover(op.issuer)


def test_discovery(op: OIDCServer, meta: dict[str, Any]) -> None:
    assert meta["issuer"] == op.issuer
    assert meta["code_challenge_methods_supported"] == ["S256"]
    assert meta["authorization_response_iss_parameter_supported"] is True
    assert meta["response_types_supported"] == ["code"]
    assert {"authorization_code", "refresh_token"} <= set(meta["grant_types_supported"])
    for endpoint in ("revocation_endpoint", "introspection_endpoint", "userinfo_endpoint"):
        assert meta[endpoint].startswith(op.issuer)


def test_pkce_is_required(meta: dict[str, Any]) -> None:
    result = authorize(meta, code_challenge=None, code_challenge_method=None)
    assert result["error"] == "invalid_request"
    assert "PKCE" in result["error_description"]


def test_code_flow_refresh_rotation_and_reuse_detection(
    op: OIDCServer, meta: dict[str, Any]
) -> None:
    op.reset()
    result = authorize(meta)
    assert result["iss"] == op.issuer  # RFC 9207
    tokens = redeem(meta, result)
    assert tokens["token_type"] == "Bearer"
    assert tokens["expires_in"] == ACCESS_TOKEN_TTL
    assert tokens["access_token"] and tokens["refresh_token"] and tokens["id_token"]
    claims = json.loads(base64.urlsafe_b64decode(tokens["id_token"].split(".")[1] + "=="))
    assert (claims["iss"], claims["aud"], claims["sub"]) == (op.issuer, "test-client", "alice")

    userinfo = httpx.get(
        meta["userinfo_endpoint"], headers={"Authorization": f"Bearer {tokens['access_token']}"}
    )
    assert userinfo.status_code == 200, userinfo.text
    assert userinfo.json()["sub"] == "alice"

    response = refresh(meta, tokens["refresh_token"])
    assert response.status_code == 200, response.text
    rotated = response.json()
    assert rotated["refresh_token"] != tokens["refresh_token"]
    assert rotated["access_token"] != tokens["access_token"]
    assert introspect(meta, rotated["access_token"])["active"] is True

    # Reusing the rotated-out token is treated as theft: the whole grant is revoked.
    assert_invalid_grant(refresh(meta, tokens["refresh_token"]))
    assert_invalid_grant(refresh(meta, rotated["refresh_token"]))
    assert introspect(meta, rotated["access_token"])["active"] is False

    assert op.stats() == {
        "authorization_code": 1,
        "authorization_code_ok": 1,
        "refresh_token": 3,
        "refresh_token_ok": 1,
        "refresh_token_failed": 2,
    }


def test_code_reuse_revokes_grant(meta: dict[str, Any]) -> None:
    result = authorize(meta)
    tokens = redeem(meta, result)
    with pytest.raises(AssertionError, match="invalid_grant"):
        redeem(meta, result)
    assert introspect(meta, tokens["access_token"])["active"] is False
    assert_invalid_grant(refresh(meta, tokens["refresh_token"]))


def test_revocation(op: OIDCServer, meta: dict[str, Any]) -> None:
    op.reset()
    tokens = redeem(meta, authorize(meta))
    response = httpx.post(
        meta["revocation_endpoint"],
        data={"token": tokens["refresh_token"], "token_type_hint": "refresh_token"},
        auth=CLIENT_AUTH,
    )
    assert response.status_code == 200, response.text
    assert_invalid_grant(refresh(meta, tokens["refresh_token"]))
    # Revoking a refresh token revokes its grant, including the access token.
    assert introspect(meta, tokens["access_token"])["active"] is False
    assert op.stats() == {
        "authorization_code": 1,
        "authorization_code_ok": 1,
        "revocation": 1,
        "revocation_ok": 1,
        "refresh_token": 1,
        "refresh_token_failed": 1,
    }


def test_access_token_expires(meta: dict[str, Any]) -> None:
    tokens = redeem(meta, authorize(meta))
    headers = {"Authorization": f"Bearer {tokens['access_token']}"}
    assert httpx.get(meta["userinfo_endpoint"], headers=headers).status_code == 200
    # A real sleep: the token is the node provider's, which runs on its own (real) clock.
    time.sleep(ACCESS_TOKEN_TTL + 0.1)
    assert httpx.get(meta["userinfo_endpoint"], headers=headers).status_code == 401


def test_injected_failures(op: OIDCServer, meta: dict[str, Any]) -> None:
    tokens = redeem(meta, authorize(meta))
    op.reset()
    op.fail(status=503, count=1)
    response = refresh(meta, tokens["refresh_token"])
    assert response.status_code == 503
    assert response.json()["error"] == "temporarily_unavailable"
    # Exactly one request failed: the same (unconsumed) refresh token still works.
    response = refresh(meta, tokens["refresh_token"])
    assert response.status_code == 200, response.text
    assert op.stats() == {
        "refresh_token": 2,
        "refresh_token_ok": 1,
        "refresh_token_failed": 1,
        "injected_failures": 1,
    }

    op.fail(delay_ms=1500, count=1)
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(
            meta["token_endpoint"],
            data={"grant_type": "refresh_token", "refresh_token": "x"},
            auth=CLIENT_AUTH,
            timeout=0.5,
        )
    started = time.monotonic()
    assert_invalid_grant(refresh(meta, "not-a-token"))  # delay was consumed by the first request
    assert time.monotonic() - started < 1


def test_html_interaction_pages() -> None:
    with OIDCServer() as html_op:
        meta = discover(html_op.issuer)
        denied = authorize(meta, decision="deny")
        assert denied["error"] == "access_denied"
        assert denied["iss"] == html_op.issuer
        tokens = redeem(meta, authorize(meta, login="bob"))
        assert tokens["refresh_token"]
        assert introspect(meta, tokens["access_token"])["sub"] == "bob"
