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
        forged = {"Host": "evil.example", "Authorization": f"Bearer {env.api_key}"}
        answer = httpx.get(f"{env.base_url}{path}", headers=forged)
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


def test_a_query_of_a_million_characters_is_a_problem_not_a_plain_400(env):
    import socket

    port = int(env.base_url.rsplit(":", 1)[1])
    for size in (20_000, 1_000_000):  # httpx itself refuses a query over 64 KiB: a socket
        with socket.create_connection(("127.0.0.1", port), timeout=10) as connection:
            connection.sendall(
                f"GET /v1/connections/token?provider=local&workspace_id=w&actor_id={'a' * size}"
                f" HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode()
            )
            answer = b""
            while more := connection.recv(65_536):
                answer += more
        assert answer.startswith(b"HTTP/1.1 414"), answer[:300]
        assert b"content-type: application/problem+json" in answer
        assert b'"code":"uri_too_long"' in answer
    with env.api() as api:
        fits = api.get("/v1/connections/token", params={**IDS, "actor_id": "\U0001f600" * 255})
        assert fits.status_code == 404, fits.text  # the longest id's query still fits


def raw_post(env, path: str, headers: str, length: int, sent: int) -> tuple[bytes, int]:
    """POST ``path`` declaring ``length`` bytes of body and sending at most ``sent``; the
    server's answer and how many body bytes went out before it came."""
    import socket

    port = int(env.base_url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=10) as connection:
        connection.sendall(
            f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            f"Content-Length: {length}\r\n{headers}\r\n".encode()
        )
        chunk, went = b"x" * 65_536, 0
        connection.settimeout(0.05)
        answer = b""
        while went < sent:
            try:
                answer = connection.recv(65_536)
            except TimeoutError:
                pass
            if answer:
                break
            connection.sendall(chunk)
            went += len(chunk)
        connection.settimeout(10)
        while b"\r\n\r\n" not in answer:
            more = connection.recv(65_536)
            if not more:
                break
            answer += more
    return answer, went


def test_the_api_key_is_checked_before_the_body_is_read(env):
    """An unauthenticated 20 MB body is answered 401 before the client sent it all."""
    answer, went = raw_post(env, "/v1/connections/refresh", "", 20_000_000, 2_000_000)
    assert answer.startswith(b"HTTP/1.1 401"), answer[:200]
    assert b"application/problem+json" in answer
    assert went < 2_000_000


def test_a_body_over_the_limit_is_413_with_a_valid_key(env):
    with env.api() as api:
        declared = api.post("/v1/connections/refresh", content=b"{" + b" " * 1_048_576 + b"}")
        assert problem(declared, 413)["code"] == "payload_too_large"

        def chunks():  # no Content-Length: counted as it is read
            yield b'{"provider": "local", "workspace_id": "ws_edge", "actor_id": "'
            for _ in range(40):
                yield b"a" * 65_536
            yield b'"}'

        streamed = api.post(
            "/v1/connections/refresh",
            content=chunks(),
            headers={"content-type": "application/json"},
        )
        assert problem(streamed, 413)["code"] == "payload_too_large"
    form = httpx.post(
        f"{env.base_url}/oauth/local/callback",
        content=b"state=" + b"s" * 70_000,
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert form.status_code == 413
