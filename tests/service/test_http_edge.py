"""The HTTP edge: what the service refuses before (or instead of) the routes, and the
headers every answer carries (issue 26)."""

from __future__ import annotations

import httpx
import pytest

IDS = {"provider": "local", "workspace_id": "ws_edge", "actor_id": "erin"}

UNDECODABLE = ("%ff%fe", "%c3%28", "%ED%A0%80")


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
