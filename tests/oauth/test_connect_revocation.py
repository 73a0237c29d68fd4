"""Issue 25 (7): tokens the connect flow lets go of are revoked at the real provider, when
its spec says grants are independent (``independent_grants``), and only then.

The provider is oidc-provider, configured here as a custom provider with that key: each
flow below runs in a fresh browser, so a fresh session, so each authorization gets a grant
of its own (in one session oidc-provider reuses the grant, and revoking any refresh token
ends it: that is why the key is not the default; see README).
"""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode, urlsplit

import httpx
import pytest

from tests.helpers.service_harness import (
    CLIENT_ID,
    CLIENT_SECRET,
    connect,
    open_link,
    outcome,
    walk,
)

pytestmark = pytest.mark.env_options(
    provider_settings="""
issuer = "{issuer}"
authorization_endpoint = "{issuer}/auth"
token_endpoint = "{issuer}/token"
revocation_endpoint = "{issuer}/token/revocation"
refresh_tokens = "rotating"
independent_grants = true
"""
)


def active(env, token):
    response = httpx.post(
        f"{env.provider.issuer}/token/introspection",
        data={"token": token},
        auth=(CLIENT_ID, CLIENT_SECRET),
    )
    response.raise_for_status()
    return response.json()["active"]


def refreshes(env, refresh_token):
    response = httpx.post(
        f"{env.provider.issuer}/token",
        data={"grant_type": "refresh_token", "refresh_token": refresh_token},
        auth=(CLIENT_ID, CLIENT_SECRET),
    )
    return response.status_code == 200


def last_issued(env):
    entry = env.provider.issued()[-1]
    assert entry["grant"] == "authorization_code"
    return entry["token"], entry["refresh"]


def vault_token(env, actor):
    with env.api() as api:
        response = api.post(
            "/v1/connections/refresh",
            json={"provider": "local", "workspace_id": "ws_rv", "actor_id": actor},
        )
    assert response.status_code == 200, response.text
    return response.json()["access_token"]


def test_a_reconnect_revokes_the_grant_it_replaced_and_keeps_the_new_one(env):
    assert outcome(connect(env, "ws_rv", "alice"))["oauthvault_status"] == "connected"
    old_access, old_refresh = last_issued(env)
    assert old_refresh is not None and active(env, old_refresh)
    assert outcome(connect(env, "ws_rv", "alice"))["oauthvault_status"] == "connected"
    new_access, new_refresh = last_issued(env)
    assert new_refresh != old_refresh
    assert not active(env, old_refresh)
    assert not active(env, old_access)
    assert active(env, new_refresh) and active(env, new_access)
    # The stored connection is the new grant, and it still refreshes at the provider.
    assert active(env, vault_token(env, "alice"))


def test_a_first_connect_revokes_nothing(env):
    before = env.provider.stats().get("revocation", 0)
    assert outcome(connect(env, "ws_rv", "bob"))["oauthvault_status"] == "connected"
    assert env.provider.stats().get("revocation", 0) == before


def test_a_failed_revocation_never_fails_the_reconnect(env, caplog):
    assert outcome(connect(env, "ws_rv", "carol"))["oauthvault_status"] == "connected"
    _, old_refresh = last_issued(env)
    env.provider.fail_revocations(1)
    with caplog.at_level("WARNING", logger="oauthvault.providers"):
        assert outcome(connect(env, "ws_rv", "carol"))["oauthvault_status"] == "connected"
    assert "revoking the replaced grant at local failed" in caplog.text
    assert old_refresh not in caplog.text
    assert active(env, vault_token(env, "carol"))


def test_tokens_discarded_for_an_id_token_that_fails_verification_are_revoked(env, pg, caplog):
    """The id_token carries another nonce than the one the vault sent (an injected
    authorization response): the flow refuses it, and the tokens it got are revoked."""
    with httpx.Client(timeout=10) as browser:
        start = open_link(browser, env.connect_link("ws_rv", "mallory"))
        assert start.status_code == 302
        authorize = urlsplit(start.headers["location"])
        query = dict(parse_qsl(authorize.query)) | {"nonce": "not-the-vaults", "login_hint": "m"}
        tampered = authorize._replace(query=urlencode(query)).geturl()
        with caplog.at_level("INFO"):
            result = walk(browser, tampered, lambda location: "/app/done" in location, "m")
    assert outcome(result)["oauthvault_error"] == "invalid_id_token"
    access, refresh = last_issued(env)
    assert refresh is not None
    assert not active(env, refresh) and not active(env, access)
    assert not refreshes(env, refresh)
    assert access not in caplog.text and refresh not in caplog.text
    stored = pg.execute("SELECT count(*) FROM oauth_tokens WHERE actor_id = 'mallory'")
    assert stored.fetchone()[0] == 0


def tokens(access, refresh):
    from oauthvault.models import TokenSet

    return TokenSet(access, refresh, None, None)


@pytest.mark.parametrize(
    ("old", "replaced"),
    [
        pytest.param(None, False, id="first-connect"),
        pytest.param(tokens("a1", "r1"), True, id="another-grant"),
        pytest.param(tokens("a1", "r2"), False, id="same-refresh-token"),
        pytest.param(tokens("a2", "r1"), False, id="same-access-token"),
    ],
)
def test_only_a_grant_sharing_no_token_with_the_new_one_is_revoked(old, replaced):
    from oauthvault.connect.revocations import replaced_grant

    assert replaced_grant(old, tokens("a2", "r2")) is (old if replaced else None)


def test_an_answer_without_id_token_after_openid_was_requested_is_refused(env, pg, caplog):
    """Issue 26 (16): the vault asked for ``openid`` (and sent a nonce) but the code
    exchange answers without an id_token: it is refused like one that fails verification,
    and the tokens it got are revoked."""
    env.provider.drop_id_tokens(1)
    with caplog.at_level("INFO"):
        result = connect(env, "ws_rv", "trudy")
    assert outcome(result)["oauthvault_error"] == "invalid_id_token"
    access, refresh = last_issued(env)
    assert refresh is not None
    assert not active(env, refresh) and not active(env, access)
    assert access not in caplog.text and refresh not in caplog.text
    stored = pg.execute("SELECT count(*) FROM oauth_tokens WHERE actor_id = 'trudy'")
    assert stored.fetchone()[0] == 0
