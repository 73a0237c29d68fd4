"""Smoke test for the local OpenID Connect provider used by the integration tests.

Deliberately not skipped when node/npm are missing: the fixture then errors, failing the run.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import secrets
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urljoin, urlsplit

import httpx
import pytest

from oidc_server import DEFAULT_CLIENT, DEFAULT_REDIRECT_URI, OIDCServer

CLIENT_AUTH = (DEFAULT_CLIENT["client_id"], DEFAULT_CLIENT["client_secret"])
ACCESS_TOKEN_TTL = 2


@pytest.fixture(scope="module")
def op() -> Iterator[OIDCServer]:
    with OIDCServer(auto_approve=True, ttl={"AccessToken": ACCESS_TOKEN_TTL}) as server:
        yield server


@pytest.fixture(scope="module")
def meta(op: OIDCServer) -> dict[str, Any]:
    return discover(op.issuer)


def discover(issuer: str) -> dict[str, Any]:
    response = httpx.get(f"{issuer}/.well-known/openid-configuration")
    result: dict[str, Any] = response.raise_for_status().json()
    return result


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def authorize(
    meta: dict[str, Any], *, login: str = "alice", decision: str = "authorize", **extra: str | None
) -> dict[str, str]:
    """Run the authorization request in a fresh cookie jar (so every call gets its own grant),
    following redirects by hand until the client's redirect_uri; return its query + verifier.
    HTML interaction pages (when auto_approve is off) are answered with `login` and `decision`."""
    verifier = b64url(secrets.token_bytes(32))
    params = {
        "response_type": "code",
        "client_id": DEFAULT_CLIENT["client_id"],
        "redirect_uri": DEFAULT_REDIRECT_URI,
        "scope": "openid offline_access profile",
        "state": secrets.token_urlsafe(16),
        "code_challenge": b64url(hashlib.sha256(verifier.encode()).digest()),
        "code_challenge_method": "S256",
        "login_hint": login,
        **extra,
    }
    params = {k: v for k, v in params.items() if v is not None}  # None = omit the parameter
    with httpx.Client(follow_redirects=False, timeout=10) as browser:
        url = str(httpx.URL(meta["authorization_endpoint"], params=params))
        response = browser.get(url)
        for _ in range(10):
            if response.status_code == 200:  # an interaction page: submit its form
                html = response.text
                form = re.search(r'<form[^>]* action="([^"]+)"', html)
                assert form, html
                action = urljoin(url, form[1])
                if 'id="login"' in html and 'id="submit"' in html:
                    response = browser.post(action, data={"login": login})
                else:
                    assert 'id="authorize"' in html and 'id="deny"' in html, html
                    response = browser.post(action, data={"decision": decision})
                continue
            assert response.status_code in (302, 303), response.text
            url = urljoin(url, response.headers["location"])
            if url.startswith(DEFAULT_REDIRECT_URI):
                query = {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
                assert query.pop("state") == params["state"]
                return {**query, "code_verifier": verifier}
            response = browser.get(url)
    raise AssertionError("authorization flow did not reach the redirect_uri")


def token(meta: dict[str, Any], **data: str) -> httpx.Response:
    return httpx.post(meta["token_endpoint"], data=data, auth=CLIENT_AUTH, timeout=10)


def redeem(meta: dict[str, Any], result: dict[str, str]) -> dict[str, Any]:
    response = token(
        meta,
        grant_type="authorization_code",
        code=result["code"],
        redirect_uri=DEFAULT_REDIRECT_URI,
        code_verifier=result["code_verifier"],
    )
    assert response.status_code == 200, response.text
    tokens: dict[str, Any] = response.json()
    return tokens


def refresh(meta: dict[str, Any], refresh_token: str) -> httpx.Response:
    return token(meta, grant_type="refresh_token", refresh_token=refresh_token)


def assert_invalid_grant(response: httpx.Response) -> None:
    assert response.status_code == 400, response.text
    assert response.json()["error"] == "invalid_grant"


def introspect(meta: dict[str, Any], value: str) -> dict[str, Any]:
    response = httpx.post(meta["introspection_endpoint"], data={"token": value}, auth=CLIENT_AUTH)
    result: dict[str, Any] = response.raise_for_status().json()
    return result


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
