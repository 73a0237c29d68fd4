"""The service around the flow: health, OpenAPI, stored tokens API, errors, secrets."""

from __future__ import annotations

import logging
import time

import httpx
import pytest

from tests.helpers.service_harness import CLIENT_SECRET, connect, open_link, outcome

IDS = {"provider": "local", "workspace_id": "ws_api", "actor_id": "dave"}

# The service (``env``) with its own link and state lifetimes.
pytestmark = pytest.mark.env_options(service_settings="link_ttl = 1200\nstate_ttl = 900")


def test_link_and_state_lifetimes_are_settings(env):
    from datetime import UTC, datetime

    with env.api() as api:
        created = api.post("/v1/connect-links", json={**IDS, "return_url": env.return_url})
    assert created.status_code in (200, 201), created.text
    expires_at = datetime.fromisoformat(created.json()["expires_at"])
    left = (expires_at - datetime.now(UTC)).total_seconds()
    assert 1100 < left <= 1200


def test_healthz_and_openapi(env):
    health = httpx.get(f"{env.base_url}/healthz")
    assert health.json() == {"status": "ok"}
    ready = httpx.get(f"{env.base_url}/readyz")
    assert ready.status_code == 200, ready.text
    body = ready.json()
    assert body["status"] == "ready" and body["database"] == "up" and body["cache"] == "up"
    assert body["local_cache"] in ("live", "suspended")  # the feed may still be starting
    spec = httpx.get(f"{env.base_url}/openapi.json").json()
    for path in (
        "/v1/connect-links",
        "/v1/connections",
        "/v1/connections/token",
        "/v1/connections/refresh",
        "/oauth/{provider}/authorize",
        "/oauth/{provider}/callback",
        "/healthz",
        "/readyz",
    ):
        assert path in spec["paths"]


def test_store_get_list_delete_through_the_api(env, pg):
    with env.api() as api:
        stored = api.put(
            "/v1/connections",
            json={
                **IDS,
                "access_token": "API-ACCESS-SECRET",
                "refresh_token": "API-REFRESH",
                "expires_in": 600,
                "scope": "read",
            },
        )
        assert stored.status_code == 204
        token = api.get("/v1/connections/token", params=IDS).json()
        assert token["access_token"] == "API-ACCESS-SECRET"
        assert token["token_type"] == "Bearer"
        listed = api.get("/v1/connections", params={"workspace_id": "ws_api"})
        assert "API-ACCESS-SECRET" not in listed.text
        assert listed.json()[0]["scope"] == "read"
        deleted = api.delete("/v1/connections", params=IDS)
        assert deleted.json() == {"deleted": True, "revoked": None}
        missing = api.get("/v1/connections/token", params=IDS)
        assert missing.status_code == 404
        assert missing.json()["code"] == "not_found"


def test_an_undecryptable_connection_is_a_documented_409_and_its_own_status(env, pg):
    where = {**IDS, "actor_id": "tampered"}
    with env.api() as api:
        stored = api.put("/v1/connections", json={**where, "access_token": "A", "expires_in": 600})
        assert stored.status_code == 204
        assert api.get("/v1/connections/token", params=where).status_code == 200  # cached
        pg.execute(
            "UPDATE oauth_tokens SET access_token_encrypted = 'AAAA' || access_token_encrypted,"
            " version = nextval('oauth_tokens_version_seq') WHERE actor_id = 'tampered'"
        )
        for _ in range(200):  # the change is announced; every cached copy is refused
            answer = api.get("/v1/connections/token", params=where)
            if answer.status_code != 200:
                break
        assert answer.status_code == 409, answer.text
        assert answer.headers["content-type"] == "application/problem+json"
        assert answer.json()["code"] == "decryption_error"
        listed = api.get("/v1/connections", params={"workspace_id": where["workspace_id"]})
        [row] = [c for c in listed.json() if c["actor_id"] == "tampered"]
        assert row["status"] == "undecryptable" and "do not decrypt" in row["last_error"]
        spec = api.get("/openapi.json").json()
        token_route = spec["paths"]["/v1/connections/token"]["get"]["responses"]
        assert "409" in token_route


def test_an_expired_token_without_refresh_token_needs_reauthorization(env):
    with env.api() as api:
        api.put("/v1/connections", json={**IDS, "access_token": "OLD", "expires_in": 0})
        response = api.get("/v1/connections/token", params=IDS)
        listed = api.get("/v1/connections", params={"workspace_id": "ws_api"}).json()
    assert response.status_code == 409
    assert response.json()["code"] == "reauthorization_required"
    assert "OLD" not in response.text
    assert listed[0]["status"] == "needs_reauth"
    assert listed[0]["last_error"] == "no_refresh_token"


def test_a_forced_refresh_through_the_api(env):
    """POST /v1/connections/refresh refreshes now at the provider (and keeps the rotated
    refresh token: a second one works too); unknown connections are 404."""
    assert outcome(connect(env, "ws_api_refresh", "erin"))["oauthvault_status"] == "connected"
    ids = {"provider": "local", "workspace_id": "ws_api_refresh", "actor_id": "erin"}
    with env.api() as api:
        token = api.get("/v1/connections/token", params=ids).json()["access_token"]
        first = api.post("/v1/connections/refresh", json=ids)
        assert first.status_code == 200, first.text
        second = api.post("/v1/connections/refresh", json=ids)
        assert second.status_code == 200, second.text
        assert len({token, first.json()["access_token"], second.json()["access_token"]}) == 3
        missing = api.post("/v1/connections/refresh", json={**ids, "actor_id": "nobody"})
        assert missing.status_code == 404 and missing.json()["code"] == "not_found"
        api.delete("/v1/connections", params=ids)


def test_errors_are_problem_json_without_the_input(env, caplog):
    caplog.set_level(logging.DEBUG)
    with env.api() as api:
        malformed = api.put(
            "/v1/connections", json={**IDS, "access_token": "LEAKED-SECRET", "expires_in": "x"}
        )
        invalid = api.put(
            "/v1/connections", json={**IDS, "access_token": "LEAKED\nSECRET", "expires_in": 5}
        )
        unknown = api.post(
            "/v1/connect-links",
            json={**IDS, "provider": "nope", "return_url": env.return_url},
        )
    assert malformed.status_code == 422
    assert malformed.json()["code"] == "invalid_request"
    assert invalid.status_code == 422
    assert invalid.json()["argument"] == "access_token"
    assert unknown.status_code == 404
    assert unknown.json()["code"] == "unknown_provider"
    for response in (malformed, invalid, unknown):
        assert response.headers["content-type"] == "application/problem+json"
        assert "LEAKED" not in response.text
    assert "LEAKED" not in caplog.text


def test_delete_with_revoke_reaches_the_provider(env):
    assert outcome(connect(env, "ws_revoke", "erin"))["oauthvault_status"] == "connected"
    env.provider.reset()
    with env.api() as api:
        params = {"provider": "local", "workspace_id": "ws_revoke", "actor_id": "erin"}
        token = api.get("/v1/connections/token", params=params).json()["access_token"]
        deleted = api.delete("/v1/connections", params={**params, "revoke": "true"})
    assert deleted.json() == {"deleted": True, "revoked": True}
    assert env.provider.stats().get("revocation_ok", 0) == 1
    # Revoking the refresh token ended the grant: its access token is dead too.
    userinfo = httpx.get(f"{env.provider.issuer}/me", headers={"Authorization": f"Bearer {token}"})
    assert userinfo.status_code == 401


def test_no_secret_reaches_the_logs_during_a_flow(env, caplog):
    caplog.set_level(logging.DEBUG)
    # The test's own browser (httpx) logs the URLs it visits, state and code included;
    # the service's token requests go through Authlib on httpx2, whose logs stay captured.
    for name in ("httpx", "httpcore"):
        caplog.set_level(logging.WARNING, logger=name)
    with httpx.Client(timeout=10) as browser:
        link = env.connect_link("ws_logs", "frank")
        first = open_link(browser, link)
        provider_url = first.headers["location"]
        response = connect(env, "ws_logs", "frank2")
    assert outcome(response)["oauthvault_status"] == "connected"
    with env.api() as api:
        token = api.get(
            "/v1/connections/token",
            params={"provider": "local", "workspace_id": "ws_logs", "actor_id": "frank2"},
        ).json()["access_token"]
    state = httpx.URL(provider_url).params["state"]
    for secret in (token, state, link.split("link=")[1], CLIENT_SECRET):
        assert secret not in caplog.text


def test_the_token_endpoint_checks_its_query(env):
    with env.api() as api:
        missing = api.get("/v1/connections/token", params={"provider": "local"})
        bad_ttl = api.get("/v1/connections/token", params={**IDS, "min_ttl": "-1"})
        too_long = api.get("/v1/connections/token", params={**IDS, "min_ttl": "99999"})
    assert missing.status_code == 422
    assert missing.json()["code"] == "invalid_request"
    assert {tuple(e["loc"]) for e in missing.json()["errors"]} == {
        ("query", "workspace_id"),
        ("query", "actor_id"),
    }
    for response in (bad_ttl, too_long):
        assert response.status_code == 422
        assert response.json()["errors"][0]["loc"] == ["query", "min_ttl"]
    unauthenticated = httpx.get(f"{env.base_url}/v1/connections/token", params=IDS)
    assert unauthenticated.status_code == 401
    spec = httpx.get(f"{env.base_url}/openapi.json").json()
    documented = spec["paths"]["/v1/connections/token"]["get"]["parameters"]
    assert [p["name"] for p in documented] == ["provider", "workspace_id", "actor_id", "min_ttl"]


def test_token_reads_are_audited_and_read_back_by_workspace(env, pg):
    where = {**IDS, "workspace_id": "ws_audit", "actor_id": "erin"}
    with env.api() as api:
        api.put(
            "/v1/connections", json={**where, "access_token": "AUDIT-SECRET", "expires_in": 600}
        )
        for _ in range(3):
            assert api.get("/v1/connections/token", params=where).status_code == 200
        api.get("/v1/connections/token", params={**where, "actor_id": "nobody"})
    with env.api(env.other_workspace_key) as other:
        assert other.get("/v1/connections/token", params=where).status_code == 403
        assert other.get("/v1/audit", params={"workspace_id": "ws_audit"}).status_code == 403
    deadline = time.monotonic() + 5
    with env.api() as api:
        while True:  # written in batches, a moment later
            whole = api.get("/v1/audit", params={"workspace_id": "ws_audit"})
            assert whole.status_code == 200, whole.text
            if len(whole.json()["entries"]) >= 5 or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        body = api.get("/v1/audit", params={"workspace_id": "ws_audit", "limit": 2}).json()
        everything = [*body["entries"]]
        while body["next_after"] is not None:
            body = api.get(
                "/v1/audit",
                params={"workspace_id": "ws_audit", "limit": 2, "after": body["next_after"]},
            ).json()
            everything += body["entries"]
    outcomes = [(e["caller"], e["actor_id"], e["outcome"]) for e in everything]
    assert outcomes == [
        ("backend", "erin", "served"),
        ("backend", "erin", "served"),
        ("backend", "erin", "served"),
        ("backend", "nobody", "not_found"),
        ("other-workspace-only", "erin", "refused"),
    ]
    assert {e["source"] for e in everything} == {"127.0.0.1"}
    assert "AUDIT-SECRET" not in repr(everything)
