"""Each call through the API proxy goes to the audit trail, once its answer has streamed:
the API key's name, the connection, method, host, path without the query, status (the
vault's code when the vault refused), duration and bytes; ``GET /v1/audit`` shows it
(outcome ``proxied``) and the admin console's connection page lists it, never a query.
On SQLite and PostgreSQL."""

from __future__ import annotations

import html
import http.client
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from oauthvault import generate_key
from oauthvault.service.admin_session import generate_admin_credential, hash_admin_credential

from tests.helpers.proxy_upstream import ProxyUpstream
from tests.helpers.service_harness import ConnectEnvironment, running_environment
from tests.helpers.waiting import wait_for

KEY = "sk-" + "A" * 40
ACTOR = "key-user"
CREDENTIAL = generate_admin_credential()
ADMIN = f'\n[admin]\ncredential_sha256 = "{hash_admin_credential(CREDENTIAL)}"'
QUERY_SECRET = "query-value-never-kept"


@pytest.fixture(scope="module")
def upstream() -> Iterator[ProxyUpstream]:
    with ProxyUpstream() as api:
        yield api


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def service(
    request: pytest.FixtureRequest,
    upstream: ProxyUpstream,
    tmp_path_factory: pytest.TempPathFactory,
    _redis_checked: str,
) -> Iterator[ConnectEnvironment]:
    directory: Path = tmp_path_factory.mktemp(f"proxy-audit-{request.param}")
    if request.param == "sqlite":
        database_url = f"sqlite:///{directory / 'vault.db'}"
    else:
        database_url = request.getfixturevalue("postgres_url")
    extra = f'[credentials.openai]\napi_base_url = "{upstream.base_url}/api"\n'
    local = f'issuer = "{{issuer}}"\napi_base_url = "{upstream.base_url}/api"'
    with running_environment(
        directory,
        database_url,
        _redis_checked,
        generate_key(),
        auto_approve=True,
        extra_config=extra,
        provider_settings=local,
        service_settings=ADMIN,
    ) as environment:
        yield environment


@pytest.fixture
def workspace(service: ConnectEnvironment, request: pytest.FixtureRequest) -> str:
    """A workspace of this test's own, with an OpenAI key stored for ``ACTOR``."""
    name = "ws_" + re.sub(r"[^a-z0-9]", "_", request.node.name.lower())[-40:]
    with service.api() as api:
        stored = api.put(
            "/v1/credentials",
            json={
                "provider": "openai",
                "workspace_id": name,
                "actor_id": ACTOR,
                "credentials": {"api_key": KEY},
            },
        )
    assert stored.status_code == 201, stored.text
    return name


def names(workspace: str, actor: str = ACTOR) -> dict[str, str]:
    return {
        "Oauthvault-Provider": "openai",
        "Oauthvault-Workspace-Id": workspace,
        "Oauthvault-Actor-Id": actor,
    }


def audit_entries(service: ConnectEnvironment, workspace: str) -> list[Any]:
    with service.api() as api:
        page = api.get("/v1/audit", params={"workspace_id": workspace})
    assert page.status_code == 200, page.text
    entries: list[Any] = page.json()["entries"]
    return entries


def proxied_calls(service: ConnectEnvironment, workspace: str, count: int) -> list[Any]:
    """The workspace's ``proxied`` audit entries, once ``count`` of them are written."""
    found: list[Any] = []

    def written() -> bool:
        entries = audit_entries(service, workspace)
        found[:] = [e for e in entries if e["outcome"] == "proxied"]
        return len(found) >= count

    wait_for(written, 10, f"{count} proxied call(s) in the audit trail", interval=0.05)
    return found


def test_a_proxied_get_is_audited_with_its_path_never_its_query(service, workspace):
    with service.api() as api:
        answer = api.get(
            "/v1/proxy/items/42",
            params={"q": "from:ana", "secret": QUERY_SECRET},
            headers=names(workspace),
        )
    assert answer.status_code == 200, answer.text
    assert answer.json()["query"].endswith(QUERY_SECRET)  # it did reach the provider
    [entry] = proxied_calls(service, workspace, 1)
    assert entry["caller"] == "backend"
    assert (entry["provider"], entry["workspace_id"], entry["actor_id"]) == (
        "openai",
        workspace,
        ACTOR,
    )
    assert entry["source"] == "127.0.0.1"
    call = entry["call"]
    assert call["method"] == "GET" and call["host"] == "127.0.0.1"
    assert call["path"] == "/api/items/42"
    assert call["status"] == 200 and call["error"] is None
    assert call["response_bytes"] == len(answer.content) > 0
    assert call["request_bytes"] == 0
    assert 0 <= call["duration_ms"] < 10_000
    with service.api() as api:
        everything = api.get("/v1/audit", params={"workspace_id": workspace}).text
    assert QUERY_SECRET not in everything and "from:ana" not in everything
    assert KEY not in everything
    # the credential read behind it is still a token read, as before
    reads = [e for e in audit_entries(service, workspace) if e["outcome"] != "proxied"]
    assert [(e["outcome"], e["call"]) for e in reads] == [("served", None)]


def test_bodies_both_ways_and_the_providers_own_status(service, workspace):
    body = b"x" * 5_000
    with service.api() as api:
        posted = api.post("/v1/proxy/echo", content=body, headers=names(workspace))
        missing = api.get("/v1/proxy/status/404", headers=names(workspace))
    assert posted.status_code == 200 and missing.status_code == 404
    first, second = proxied_calls(service, workspace, 2)
    assert first["call"]["method"] == "POST"
    assert first["call"]["request_bytes"] == len(body)
    assert first["call"]["response_bytes"] == len(posted.content)
    assert second["call"]["path"] == "/api/status/404"
    assert second["call"]["status"] == 404 and second["call"]["error"] is None  # the provider's


def test_a_large_streamed_answer_is_counted_as_it_streams(service, workspace):
    size = 0
    with (
        service.api() as api,
        api.stream("GET", "/v1/proxy/big/3", headers=names(workspace)) as answer,
    ):
        assert answer.status_code == 200
        for chunk in answer.iter_raw():
            size += len(chunk)
    [entry] = proxied_calls(service, workspace, 1)
    assert entry["call"]["response_bytes"] == size == 3 * 1_048_576


def test_the_vaults_refusals_are_audited_with_their_code(service, workspace):
    with service.api() as api:
        unknown = api.get(
            "/v1/proxy/items?secret=" + QUERY_SECRET, headers=names(workspace, "nobody")
        )
        unnamed = api.get("/v1/proxy/items")  # no connection named: nothing to audit it under
        hostile = api.get("/v1/proxy/a/%2e%2e/%2e%2e/admin", headers=names(workspace))
    assert unknown.headers["oauthvault-error"] == "not_found"
    assert unnamed.headers["oauthvault-error"] == "missing_connection"
    assert hostile.headers["oauthvault-error"] == "target_refused"
    refused = proxied_calls(service, workspace, 2)
    assert [(e["actor_id"], e["call"]["status"], e["call"]["error"]) for e in refused] == [
        ("nobody", 404, "not_found"),
        (ACTOR, 400, "target_refused"),
    ]
    not_found = refused[0]["call"]
    assert not_found["host"] is None and not_found["path"] == "/items"  # the caller's path
    assert not_found["response_bytes"] == len(unknown.content)
    assert refused[1]["call"]["host"] == "127.0.0.1"
    with service.api() as api:
        text = api.get("/v1/audit", params={"workspace_id": workspace}).text
    assert QUERY_SECRET not in text


def test_a_key_limited_to_other_workspaces_is_refused_and_audited(service, workspace):
    with service.api(service.other_workspace_key) as api:
        refused = api.get("/v1/proxy/items", headers=names(workspace))
    assert refused.headers["oauthvault-error"] == "forbidden"
    [entry] = proxied_calls(service, workspace, 1)
    assert entry["caller"] == "other-workspace-only"
    assert (entry["call"]["status"], entry["call"]["error"]) == (403, "forbidden")


def sign_in(base_url: str) -> httpx.Client:
    client = httpx.Client(base_url=base_url, timeout=10)
    found = re.search(r'name="csrf" value="([^"]+)"', client.get("/admin/login").text)
    assert found is not None
    answer = client.post("/admin/login", data={"csrf": found[1], "credential": CREDENTIAL})
    assert answer.status_code == 303, answer.text
    return client


def raw_get(service: ConnectEnvironment, target: str, headers: dict[str, str]) -> int:
    """GET ``target`` exactly as written (an HTTP client would encode it)."""
    connection = http.client.HTTPConnection(service.base_url.removeprefix("http://"), timeout=10)
    try:
        connection.request(
            "GET", target, headers={**headers, "Authorization": f"Bearer {service.api_key}"}
        )
        answer = connection.getresponse()
        answer.read()
        return answer.status
    finally:
        connection.close()


def test_the_admin_console_lists_a_connections_recent_calls_without_queries(service, workspace):
    with service.api() as api:
        for path in ("items/1", "status/503"):
            api.get(f"/v1/proxy/{path}", params={"secret": QUERY_SECRET}, headers=names(workspace))
    # markup in a path the vault refuses: recorded as the caller wrote it, shown escaped
    assert raw_get(service, "/v1/proxy/<b>x</b>/%2e%2e/y", names(workspace)) == 400
    proxied_calls(service, workspace, 3)
    browser = sign_in(service.base_url)
    try:
        page = browser.get(
            "/admin/connection",
            params={"provider": "openai", "workspace_id": workspace, "actor_id": ACTOR},
        )
    finally:
        browser.close()
    assert page.status_code == 200, page.text
    table = re.search(r'<table id="calls">.*?</table>', page.text, re.S)
    assert table is not None, page.text
    rows = [
        [html.unescape(cell) for cell in re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)]
        for row in re.findall(r"<tr><td.*?</tr>", table[0], re.S)
    ]
    assert [row[1:5] for row in rows] == [  # newest first: caller, method, host, path
        ["backend", "GET", "127.0.0.1", "/<b>x</b>/%2e%2e/y"],
        ["backend", "GET", "127.0.0.1", "/api/status/503"],
        ["backend", "GET", "127.0.0.1", "/api/items/1"],
    ]
    assert "target_refused" in rows[0][5] and rows[1][5] == "503" and rows[2][5] == "200"
    assert all(row[6].endswith(" ms") and int(row[7]) > 0 for row in rows)
    assert QUERY_SECRET not in page.text and "?secret" not in table[0]
    assert "<b>" not in table[0] and "&lt;b&gt;x&lt;/b&gt;" in table[0]  # escaped
    # the token reads' table is still only token reads
    reads = re.search(r'<table id="audit">.*?</table>', page.text, re.S)
    assert reads is not None and "proxied" not in reads[0]
