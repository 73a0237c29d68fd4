"""Revocation requests are built exactly as each catalog entry documents."""

from __future__ import annotations

import pytest
from pydantic import SecretStr

from oauthvault.models import TokenSet
from oauthvault.oauth.revoke import confirmed, revocation_request
from oauthvault.oauth.token_request import HttpResponse
from oauthvault.providers import ProviderConfig, load_catalog

SECRET = "client-secret-xyz"


def request_for(name: str, params: dict[str, str] | None = None, refresh: str | None = "rt"):
    spec = load_catalog()[name].with_placeholders(client_id="cid") if name == "github" else None
    spec = spec or load_catalog()[name]
    config = ProviderConfig(name=name, spec=spec, client_id="cid", client_secret=SecretStr(SECRET))
    tokens = TokenSet("at", refresh, None, None, params or {})
    return revocation_request(config, tokens)


def test_rfc7009_revokes_the_refresh_token_in_a_form():
    request = request_for("google")
    assert (request.method, request.form["token"], request.form["token_type_hint"]) == (
        "POST",
        "rt",
        "refresh_token",
    )
    assert request.form["client_secret"] == SECRET  # google: client_secret_post


@pytest.mark.parametrize(
    ("name", "params", "method", "check"),
    [
        (
            "github",
            {},
            "DELETE",
            lambda r: (
                r.json_body == {"access_token": "at"}
                and r.basic_auth == ("cid", SECRET)
                and r.url == "https://api.github.com/applications/cid/grant"
            ),
        ),
        (
            "slack",
            {},
            "POST",
            lambda r: (
                r.headers["Authorization"] == "Bearer at" and r.form is None and r.json_body is None
            ),
        ),
        (
            "notion",
            {},
            "POST",
            lambda r: (
                r.json_body == {"token": "rt"}
                and r.headers["Notion-Version"]
                and r.basic_auth == ("cid", SECRET)
            ),
        ),
        ("dropbox", {}, "POST", lambda r: r.headers["Authorization"] == "Bearer at"),
        ("quickbooks", {}, "POST", lambda r: r.json_body == {"token": "rt"}),
        ("twitch", {}, "POST", lambda r: r.form == {"client_id": "cid", "token": "at"}),
        (
            "zendesk",
            {"subdomain": "acme"},
            "DELETE",
            lambda r: (
                r.url.startswith("https://acme.zendesk.com/")
                and r.headers["Authorization"] == "Bearer at"
            ),
        ),
    ],
)
def test_custom_revocations_follow_the_catalog(name, params, method, check):
    request = request_for(name, params)
    assert request.method == method
    assert check(request)
    assert SECRET not in repr(request)


def test_no_endpoint_means_not_asked():
    assert request_for("spotify") is None


def test_only_a_confirmation_counts():
    slack = load_catalog()["slack"]
    assert confirmed(slack, HttpResponse(200, b'{"ok": true, "revoked": true}'))
    assert not confirmed(slack, HttpResponse(200, b'{"ok": false, "error": "invalid_auth"}'))
    google = load_catalog()["google"]
    assert confirmed(google, HttpResponse(200, b""))
    assert not confirmed(google, HttpResponse(400, b""))
    assert not confirmed(google, HttpResponse(failure="ConnectError"))


def test_a_customers_client_credentials_token_is_revoked_with_their_client():
    from oauthvault.models import ClientCredentials

    spec = load_catalog()["discord"]
    config = ProviderConfig(
        name="discord", spec=spec, client_id="app", client_secret=SecretStr(SECRET)
    )
    tokens = TokenSet("at", None, None, None, {}, ClientCredentials("theirs", "their-secret"))
    request = revocation_request(config, tokens)
    assert request.basic_auth == ("theirs", "their-secret")
    assert request.form["token"] == "at"
