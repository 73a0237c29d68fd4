"""A bare OAuth client for the local OpenID provider (``tests.helpers.oidc_server``) as its
default client: discovery, the authorization request, token requests.

Tests use it to get a real grant at the provider without going through oauthvault.
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
from typing import Any
from urllib.parse import parse_qs, urljoin, urlsplit

import httpx

from tests.helpers.oidc_server import DEFAULT_CLIENT, DEFAULT_REDIRECT_URI

CLIENT_AUTH = (DEFAULT_CLIENT["client_id"], DEFAULT_CLIENT["client_secret"])


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
