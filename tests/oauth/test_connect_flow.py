"""The connect flow over HTTP against a real OpenID provider, and the attacks it must stop."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from tests.helpers.service_harness import connect, open_link, outcome, walk


def test_full_flow_stores_tokens_that_the_token_api_returns(env, pg):
    result = outcome(connect(env, "ws_1", "alice"))
    assert result == {"oauthvault_status": "connected", "oauthvault_provider": "local"}
    stored = pg.execute(
        "SELECT access_token_encrypted, refresh_token_encrypted, scope FROM oauth_tokens"
        " WHERE workspace_id = 'ws_1'"
    ).fetchone()
    assert stored is not None and stored[1] is not None  # offline_access gave a refresh token
    with env.api() as api:
        token = api.get(
            "/v1/connections/token",
            params={"provider": "local", "workspace_id": "ws_1", "actor_id": "alice"},
        )
        assert token.status_code == 200
        body = token.json()
        assert body["access_token"] not in stored[0]  # encrypted at rest
        userinfo = httpx.get(
            f"{env.provider.issuer}/me",
            headers={"Authorization": f"Bearer {body['access_token']}"},
        )
        assert userinfo.status_code == 200 and userinfo.json()["sub"] == "alice"
        listed = api.get("/v1/connections", params={"workspace_id": "ws_1"}).json()
        assert [(c["actor_id"], c["status"], c["has_refresh_token"]) for c in listed] == [
            ("alice", "active", True)
        ]
        assert body["access_token"] not in str(listed)


def test_pkce_and_nonce_are_sent_to_the_provider(env):
    with httpx.Client(timeout=10) as browser:
        response = open_link(browser, env.connect_link("ws_1", "pkce"))
        assert response.status_code == 302
        query = parse_qs(urlsplit(response.headers["location"]).query)
        assert query["code_challenge_method"] == ["S256"]
        assert len(query["code_challenge"][0]) == 43
        assert len(query["state"][0]) >= 43
        assert "nonce" in query
        assert "oauthvault_binding" in response.headers["set-cookie"]
        assert "HttpOnly" in response.headers["set-cookie"]


def test_a_connect_link_works_once(env):
    link = env.connect_link("ws_1", "bob")
    with httpx.Client(timeout=10) as browser:
        assert open_link(browser, link).status_code == 302
        again = browser.get(link)
    assert again.status_code == 400
    assert "expired or was already used" in again.text


def test_access_denied_is_a_clean_outcome(env):
    with httpx.Client(timeout=10) as browser:
        start = open_link(browser, env.connect_link("ws_1", "denied"))
        state = parse_qs(urlsplit(start.headers["location"]).query)["state"][0]
        callback = browser.get(
            f"{env.base_url}/oauth/local/callback",
            params={"error": "access_denied", "state": state, "iss": env.provider.issuer},
        )
    assert outcome(callback) == {
        "oauthvault_status": "error",
        "oauthvault_provider": "local",
        "oauthvault_error": "access_denied",
    }


# --- attacks: each fails with a clear error and stores nothing -------------------------


def provider_callback(browser: httpx.Client, link: str) -> str:
    """Run the flow up to the provider's redirect to our callback; return that URL."""
    response = walk(browser, link, lambda location: "/oauth/local/callback" in location, "mallory")
    return str(response.url.join(response.headers["location"]))


def stored_count(pg, actor_id):
    return pg.execute(
        "SELECT count(*) FROM oauth_tokens WHERE actor_id = %s", (actor_id,)
    ).fetchone()[0]


def test_replayed_state_is_rejected(env, pg):
    with httpx.Client(timeout=10) as browser:
        callback = provider_callback(browser, env.connect_link("ws_1", "replay"))
        assert outcome(browser.get(callback))["oauthvault_status"] == "connected"
        pg.execute("DELETE FROM oauth_tokens WHERE actor_id = 'replay'")
        replay = browser.get(callback, follow_redirects=True)
    # Off the callback URL (no code or state stays in the address bar), onto the result page.
    assert [r.status_code for r in replay.history] == [303]
    assert replay.url.path == "/oauth/local/result" and not replay.url.query
    assert replay.status_code == 400
    assert "expired or was already completed" in replay.text
    assert stored_count(pg, "replay") == 0


def test_callback_in_another_browser_is_rejected(env, pg):
    with httpx.Client(timeout=10) as victim, httpx.Client(timeout=10) as attacker:
        callback = provider_callback(victim, env.connect_link("ws_1", "victim"))
        stolen = attacker.get(callback, follow_redirects=True)
    assert stolen.status_code == 400
    assert "started in another browser" in stolen.text
    assert stored_count(pg, "victim") == 0


def test_a_callback_for_a_provider_not_configured_is_an_unknown_page(env, pg):
    """A state moved to another provider's callback is refused by the state check itself
    (tests/oauth/test_state.py); a provider name that is not configured never reaches it."""
    with httpx.Client(timeout=10) as browser:
        callback = provider_callback(browser, env.connect_link("ws_1", "crossed"))
        crossed = browser.get(
            callback.replace("/oauth/local/", "/oauth/other/"), follow_redirects=True
        )
        assert crossed.status_code == 404
        assert "does not lead to any app" in crossed.text
        assert "other" not in crossed.text.split("<body>")[1]  # the name asked for is not shown
    assert stored_count(pg, "crossed") == 0


def test_expired_state_is_rejected(tmp_path, postgres_url, pg, key, clock):
    from oauthvault import InvalidState, OAuthTokenCache
    from oauthvault.connect import OAuthStateManager

    with OAuthTokenCache(postgres_url, None, key, clock=clock) as vault:
        states = OAuthStateManager(vault, ttl=60)
        state = states.create_state("local", "ws", "u", "http://x/cb", binding="b")
        clock.advance(61)
        with pytest.raises(InvalidState):
            states.consume_state(state, provider="local", binding="b")


@pytest.mark.parametrize("tamper", ["altered", "missing"])
def test_tampered_or_missing_code_stores_nothing(env, pg, tamper):
    actor = f"code-{tamper}"
    with httpx.Client(timeout=10) as browser:
        callback = provider_callback(browser, env.connect_link("ws_1", actor))
        parts = urlsplit(callback)
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        if tamper == "altered":
            query["code"] = query["code"][:-4] + "AAAA"
        else:
            del query["code"]
        result = browser.get(f"{env.base_url}/oauth/local/callback", params=query)
    found = outcome(result)
    assert found["oauthvault_status"] == "error"
    assert found["oauthvault_error"] in {"invalid_grant", "invalid_request"}
    assert stored_count(pg, actor) == 0


def test_the_same_code_redeemed_twice_is_refused(env, pg):
    with httpx.Client(timeout=10) as browser:
        callback = provider_callback(browser, env.connect_link("ws_1", "twice"))
        code = parse_qs(urlsplit(callback).query)["code"][0]
        assert outcome(browser.get(callback))["oauthvault_status"] == "connected"
        # A second authorization in the same browser, with the first code substituted.
        second = provider_callback(browser, env.connect_link("ws_1", "twice-b"))
        parts = urlsplit(second)
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        query["code"] = code
        reused = browser.get(f"{env.base_url}/oauth/local/callback", params=query)
    assert outcome(reused) == {
        "oauthvault_status": "error",
        "oauthvault_provider": "local",
        "oauthvault_error": "invalid_grant",
    }
    assert stored_count(pg, "twice-b") == 0


@pytest.mark.parametrize(
    "return_url",
    [
        "https://evil.example.com/app/done",
        "http://127.0.0.1:1/app/done",
        "http://127.0.0.1.evil.example.com/app/done",
        "//evil.example.com/app/done",
        "javascript:alert(1)",
        "http://user@127.0.0.1/app/done",
    ],
)
def test_open_redirect_return_urls_are_refused(env, return_url):
    with env.api() as api:
        response = api.post(
            "/v1/connect-links",
            json={
                "provider": "local",
                "workspace_id": "ws_1",
                "actor_id": "u",
                "return_url": return_url,
            },
        )
    assert response.status_code == 400
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == "invalid_return_url"


def test_a_return_url_outside_the_allowed_path_is_refused(env):
    other_path = env.return_url.replace("/app/done", "/admin")
    with env.api() as api:
        response = api.post(
            "/v1/connect-links",
            json={
                "provider": "local",
                "workspace_id": "ws_1",
                "actor_id": "u",
                "return_url": other_path,
            },
        )
    assert response.json()["code"] == "invalid_return_url"


def test_a_key_for_another_workspace_is_refused(env):
    outcome(connect(env, "ws_1", "carol"))
    with env.api(env.other_workspace_key) as api:
        params = {"provider": "local", "workspace_id": "ws_1", "actor_id": "carol"}
        token = api.get("/v1/connections/token", params=params)
        listed = api.get("/v1/connections", params={"workspace_id": "ws_1"})
        link = api.post("/v1/connect-links", json={**params, "return_url": env.return_url})
    for response in (token, listed, link):
        assert response.status_code == 403
        assert response.json()["code"] == "forbidden"
        assert "access_token" not in response.text


def test_requests_without_a_valid_key_are_refused(env):
    response = httpx.get(f"{env.base_url}/v1/connections", params={"workspace_id": "ws_1"})
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    with env.api("ovk_not-a-real-key") as api:
        assert api.get("/v1/connections", params={"workspace_id": "ws_1"}).status_code == 401


def link_without_return_url(env, actor_id):
    """A connect link whose flow ends on the service's own result page."""
    body = {"provider": "local", "workspace_id": "ws_1", "actor_id": actor_id}
    with env.api() as api:
        response = api.post("/v1/connect-links", json=body)
    response.raise_for_status()
    return response.json()["url"]


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_a_provider_5xx_during_the_code_exchange_shows_the_server_error_page(env, pg, status):
    """Issue 25 (9): an error page of the provider's web server (Django's ``Server Error
    (500)``) is ``server_error`` as documented, not "busy or down for maintenance"."""
    actor = f"down_{status}"
    with httpx.Client(timeout=10) as browser:
        callback = provider_callback(browser, link_without_return_url(env, actor))
        env.provider.fail(status, html=True)
        page = browser.get(callback, follow_redirects=True)
    assert page.url.path == "/oauth/local/result"
    assert page.status_code == 502
    assert "had a problem while you were signing in" in page.text
    assert "busy or down for maintenance" not in page.text
    assert stored_count(pg, actor) == 0


def test_a_provider_5xx_during_the_code_exchange_is_reported_as_server_error(env):
    with httpx.Client(timeout=10) as browser:
        callback = provider_callback(browser, env.connect_link("ws_1", "down_redirect"))
        env.provider.fail(500, html=True)
        result = browser.get(callback)
    assert outcome(result)["oauthvault_error"] == "server_error"


def test_a_reconnect_to_a_discovered_issuer_leaves_the_old_grant_alone(env):
    """Without ``independent_grants`` (an issuer known only by discovery) nothing is
    revoked: such a server may reuse the grant (oidc-provider does in one session)."""
    assert outcome(connect(env, "ws_1", "reconnects"))["oauthvault_status"] == "connected"
    revocations = env.provider.stats().get("revocation", 0)
    assert outcome(connect(env, "ws_1", "reconnects"))["oauthvault_status"] == "connected"
    assert env.provider.stats().get("revocation", 0) == revocations


@pytest.mark.parametrize("escape", ["%2e%2e/%2e%2e/admin", "../../admin", "..%2f..%2fadmin"])
def test_a_return_url_escaping_the_allowed_path_with_dot_segments_is_refused(env, escape):
    """Issue 26 (10): ``/app/%2e%2e/…`` starts with the allowed ``/app/`` but leaves it."""
    escaping = env.return_url.replace("/app/done", f"/app/{escape}?to=https://evil.example")
    with env.api() as api:
        response = api.post(
            "/v1/connect-links",
            json={"provider": "local", "workspace_id": "ws_1", "actor_id": "u"}
            | {"return_url": escaping},
        )
    assert response.json()["code"] == "invalid_return_url"
