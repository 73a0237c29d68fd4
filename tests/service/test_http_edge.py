"""The HTTP edge: what the service refuses before (or instead of) the routes, and the
headers every answer carries (issue 26)."""

from __future__ import annotations

import base64
import re

import httpx
import pytest

from oauthvault.service.admin_session import generate_admin_credential, hash_admin_credential

CREDENTIAL = generate_admin_credential()
# The service (``env``) with the admin console on.
pytestmark = pytest.mark.env_options(
    service_settings=f'\n[admin]\ncredential_sha256 = "{hash_admin_credential(CREDENTIAL)}"'
)

IDS = {"provider": "local", "workspace_id": "ws_edge", "actor_id": "erin"}

UNDECODABLE = ("%ff%fe", "%c3%28", "%ED%A0%80")


def signed_in(env) -> httpx.Client:
    """A client with an admin session."""
    client = httpx.Client(base_url=env.base_url, timeout=10)
    form = client.get("/admin/login")
    found = re.search(r'name="csrf" value="([^"]+)"', form.text)
    assert found is not None
    answer = client.post("/admin/login", data={"csrf": found[1], "credential": CREDENTIAL})
    assert answer.status_code in (302, 303), answer.text
    return client


def problem(response: httpx.Response, status: int) -> dict[str, object]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, object] = response.json()
    return body


@pytest.mark.parametrize("escaped", UNDECODABLE)
def test_query_ids_that_are_not_utf8_are_refused(env, escaped):
    """Distinct byte strings never reach the same connection through U+FFFD."""
    with env.api() as api:
        for method, path in (("GET", "/v1/connections/token"), ("DELETE", "/v1/connections")):
            url = f"/v1{path[3:]}?provider=local&workspace_id=ws_edge{escaped}&actor_id=erin"
            answer = problem(api.request(method, url), 422)
            assert answer["code"] == "invalid_input"
            assert answer["argument"] == "workspace_id"
        listed = api.get("/v1/connections?workspace_id=ws_edge%ff")
        assert problem(listed, 422)["argument"] == "workspace_id"


@pytest.mark.parametrize(
    "body",
    [
        b'{"provider": "local", "workspace_id": "ws_\xff\xfe", "actor_id": "erin"}',
        b'{"provider": "local", "workspace_id": "ws_\\ud800", "actor_id": "erin"}',
        b'{"provider": "local", "workspace_id": "ws_edge", "actor_id": "\\udc80x"}',
    ],
)
def test_body_ids_that_are_not_utf8_are_refused(env, body):
    with env.api() as api:
        for path in ("/v1/connections/refresh", "/v1/connect-links"):
            answer = api.post(path, content=body, headers={"content-type": "application/json"})
            assert problem(answer, 422)["code"] in ("invalid_input", "invalid_request")


def test_inputs_that_broke_parsers_are_clean_4xx_answers(env):
    """A non-ASCII digit as min_ttl, an audit ``since`` that underflows in UTC, and an
    admin cursor nested deeper than the JSON parser's recursion limit: never a 500."""
    with env.api() as api:
        ttl = api.get("/v1/connections/token", params={**IDS, "min_ttl": "\u00b2"})
        assert problem(ttl, 422)["code"] == "invalid_request"
        since = api.get(
            "/v1/audit",
            params={"workspace_id": "ws_edge", "since": "0001-01-01T01:00:53+04:05"},
        )
        assert problem(since, 422)["code"] == "invalid_request"
    cursor = base64.urlsafe_b64encode(b"[" * 5000).decode().rstrip("=")
    admin = signed_in(env)
    page = admin.get("/admin/connections", params={"after": cursor})
    admin.close()
    assert page.status_code < 500, page.text  # the page, saying the cursor is wrong
    assert "Traceback" not in page.text and "is not a page of this listing" in page.text


def test_no_redirect_takes_its_host_from_the_request(env):
    """A trailing slash is not redirected (to an address built from a forged Host)."""
    for path in ("/admin/", "/healthz/", "/v1/connections/"):
        answer = httpx.get(f"{env.base_url}{path}", headers={"Host": "evil.example"})
        assert "evil.example" not in answer.headers.get("location", ""), path
        assert problem(answer, 404)["code"] == "not_found"


def test_answers_carrying_secrets_are_not_stored_or_sniffed(env):
    with env.api() as api:
        link = api.post("/v1/connect-links", json={**IDS, "return_url": env.return_url})
        stored = api.put("/v1/connections", json={**IDS, "access_token": "A", "expires_in": 600})
        token = api.get("/v1/connections/token", params=IDS)
        refused = api.get("/v1/connections/token", params={**IDS, "actor_id": "nobody"})
    page = httpx.get(f"{env.base_url}/oauth/local/authorize", params={"link": "used"})
    for answer in (link, stored, token, refused, page):
        assert answer.status_code < 500, answer.text
        assert answer.headers["cache-control"] == "no-store", answer.request.url
        assert answer.headers["x-content-type-options"] == "nosniff", answer.request.url


def test_the_docs_pages_cannot_be_framed_and_run_only_their_own_scripts(env):
    for path in ("/docs", "/redoc"):
        answer = httpx.get(f"{env.base_url}{path}")
        assert answer.status_code == 200
        assert answer.headers["x-frame-options"] == "DENY"
        policy = answer.headers["content-security-policy"]
        assert "frame-ancestors 'none'" in policy and "script-src 'self'" in policy
        assert "'unsafe-inline'" not in policy.split("script-src")[1].split(";")[0]
