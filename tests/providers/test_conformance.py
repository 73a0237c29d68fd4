"""Conformance: every provider of the catalog, emulated, driven through the real service.

One provider emulator (:mod:`tests.helpers.provider_emulator`, behaviour per provider in
:mod:`tests.helpers.emulations`) plays all catalog providers; one oauthvault service is
configured with every provider's endpoints pointing at it. Each provider goes through
connect (connect link, browser redirects, callback), get, forced refresh (twice, to see
rotation), dead grant and revoke, and each step is checked both from the service's API and
from what the emulator received.

A catalog provider without an emulation fails here, so the catalog cannot grow untested.
"""

from __future__ import annotations

import base64
import hashlib
import json
import uuid
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from html.parser import HTMLParser
from typing import Any

import httpx
import pytest

from oauthvault.providers import load_catalog
from oauthvault.providers.params import pick
from oauthvault.providers.spec import ProviderSpec

from tests.helpers.emulated_service import EmulatedService, emulated_service
from tests.helpers.emulations import EMULATIONS, Emulation
from tests.helpers.provider_emulator import Grant
from tests.helpers.service_harness import press_continue

# Version-independent and the longest group: scripts/test runs it on the first Python only.
pytestmark = [pytest.mark.once, pytest.mark.slow]

CATALOG: dict[str, ProviderSpec] = load_catalog()
PROVIDERS = sorted(CATALOG)
#: The largest min_ttl the API takes: emulated tokens live less, so it forces a refresh.
FORCE = 3600


Stack = EmulatedService


@pytest.fixture(scope="module")
def stack(postgres_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """The emulator and one service configured for every emulated catalog provider."""
    with emulated_service(
        CATALOG,
        EMULATIONS,
        database_url=postgres_url,
        directory=tmp_path_factory.mktemp("conformance"),
    ) as service:
        yield service


# --- helpers -----------------------------------------------------------------------------------


def emulation_of(name: str) -> Emulation:
    emulation = EMULATIONS.get(name)
    if emulation is None:
        pytest.fail(
            f"catalog provider {name!r} has no emulation: add one to tests/helpers/emulations.py "
            "(what its documentation says it answers) so that the conformance suite covers it",
            pytrace=False,
        )
    return emulation


def s256(verifier: str) -> str:
    """RFC 7636 §4.2: BASE64URL(SHA256(code_verifier)), without padding."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def new_ids(name: str) -> tuple[str, str]:
    return f"ws-{name}-{uuid.uuid4().hex[:8]}", f"actor-{uuid.uuid4().hex[:8]}"


class _Form(HTMLParser):
    """The first form of a page: its action and its hidden inputs."""

    def __init__(self) -> None:
        super().__init__()
        self.action: str | None = None
        self.fields: dict[str, str] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {key: value or "" for key, value in attrs}
        if tag == "form" and self.action is None and values.get("method", "").lower() == "post":
            self.action = values.get("action")
        elif tag == "input" and self.action is not None and "name" in values:
            self.fields[values["name"]] = values.get("value", "")


def browse(url: str) -> httpx.Response:
    """A browser: follows redirects, and submits a provider's auto-posting form
    (``response_mode=form_post``) the way its onload script would."""
    with httpx.Client(timeout=15, follow_redirects=True) as browser:
        page = browser.get(url)
        if page.status_code == 200 and 'id="confirm"' in page.text:  # "Continue to …"
            page = press_continue(browser, page)
        form = _Form()
        form.feed(page.text if "html" in page.headers.get("content-type", "") else "")
        if page.status_code == 200 and form.action and "code" in form.fields:
            page = browser.post(form.action, data=form.fields)
        return page


def explain(stack: Stack, name: str) -> str:
    problems = stack.emulator.problems_of(name)
    return f"emulator problems for {name}: {problems or 'none'}"


def connect(
    stack: Stack, name: str, workspace_id: str, actor_id: str, params: Mapping[str, str]
) -> None:
    """A whole connect flow; asserts that the service's result page says connected."""
    body: dict[str, Any] = {"provider": name, "workspace_id": workspace_id, "actor_id": actor_id}
    if params:
        body["params"] = dict(params)
    link = stack.api.post("/v1/connect-links", json=body)
    assert link.status_code == 201, link.text
    page = browse(link.json()["url"])
    assert page.status_code == 200 and "Connected" in page.text, (
        f"connect flow ended with HTTP {page.status_code} at {page.url}: {page.text[:300]}; "
        + explain(stack, name)
    )


def get_token(
    stack: Stack, name: str, workspace_id: str, actor_id: str, min_ttl: int = 0
) -> httpx.Response:
    query = {
        "provider": name,
        "workspace_id": workspace_id,
        "actor_id": actor_id,
        "min_ttl": str(min_ttl),
    }
    return stack.api.get("/v1/connections/token", params=query)


def refresh(stack: Stack, name: str, workspace_id: str, actor_id: str) -> httpx.Response:
    """A forced refresh through the service (POST /v1/connections/refresh)."""
    ids = {"provider": name, "workspace_id": workspace_id, "actor_id": actor_id}
    return stack.api.post("/v1/connections/refresh", json=ids)


def refresh_ok(stack: Stack, name: str, workspace_id: str, actor_id: str) -> dict[str, Any]:
    response = refresh(stack, name, workspace_id, actor_id)
    assert response.status_code == 200, f"{response.text}; {explain(stack, name)}"
    body: dict[str, Any] = response.json()
    return body


def token_ok(stack: Stack, name: str, *ids: str, min_ttl: int = 0) -> dict[str, Any]:
    response = get_token(stack, name, *ids, min_ttl=min_ttl)
    assert response.status_code == 200, f"{response.text}; {explain(stack, name)}"
    body: dict[str, Any] = response.json()
    return body


def connection(stack: Stack, name: str, workspace_id: str) -> dict[str, Any]:
    response = stack.api.get("/v1/connections", params={"workspace_id": workspace_id})
    assert response.status_code == 200, response.text
    rows = [row for row in response.json() if row["provider"] == name]
    assert len(rows) == 1, rows
    row: dict[str, Any] = rows[0]
    return row


def delete(stack: Stack, name: str, workspace_id: str, actor_id: str) -> dict[str, Any]:
    query = {"provider": name, "workspace_id": workspace_id, "actor_id": actor_id, "revoke": "true"}
    response = stack.api.delete("/v1/connections", params=query)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def assert_params(
    actual: Mapping[str, str], expected: Mapping[str, str], spec: ProviderSpec
) -> None:
    missing = {key: value for key, value in expected.items() if actual.get(key) != value}
    assert not missing, f"params {dict(actual)} lack {missing}"
    required = {param.name for param in spec.connection_params if param.required}
    assert required <= set(actual), f"required params {sorted(required - set(actual))} missing"


def revocation_target(stack: Stack, spec: ProviderSpec, grant: Grant) -> str:
    """The token the catalog says the revocation request carries."""
    shape = stack.emulator.revocation_shape(spec)
    if shape.token == "refresh_or_access" and grant.refresh_token is not None:
        return grant.refresh_token
    return grant.access_token


def dead_grant_code(spec: ProviderSpec, emulation: Emulation) -> str | None:
    _, body = emulation.dead_grant
    for name in spec.error_fields:
        value = pick(body, name)
        if isinstance(value, str) and value:
            return value
    return None


# --- the catalog is covered ------------------------------------------------------------------


@pytest.mark.parametrize("name", PROVIDERS)
def test_catalog_provider_has_an_emulation(name: str) -> None:
    emulation = emulation_of(name)
    spec = CATALOG[name]
    declared = {param.name: param for param in spec.connection_params}
    for key, value in emulation.link_params.items():
        assert key in declared and declared[key].source == "link", key
        assert declared[key].accepts(value), (key, value)
    for key in emulation.expected_params:
        assert key in declared, f"{key} is not a connection parameter of {name}"
    if spec.identity_endpoint is not None:
        assert emulation.identity is not None, "an identity endpoint needs an answer"


def test_every_emulation_is_a_catalog_provider() -> None:
    assert set(EMULATIONS) <= set(CATALOG), sorted(set(EMULATIONS) - set(CATALOG))


# --- the whole lifecycle, per provider -------------------------------------------------------


@pytest.mark.parametrize("name", PROVIDERS)
def test_provider_lifecycle(stack: Stack, name: str) -> None:
    """connect -> get -> refresh (twice) -> dead grant -> revoke, for one provider."""
    emulation = emulation_of(name)
    spec = CATALOG[name]
    ids = new_ids(name)
    workspace_id, actor_id = ids

    connect(stack, name, workspace_id, actor_id, emulation.link_params)
    first = token_ok(stack, name, *ids)
    grant = stack.emulator.grant_of(first["access_token"])
    assert grant.provider == name
    assert_params(first["params"], emulation.expected_params, spec)
    assert_params(connection(stack, name, workspace_id)["params"], emulation.expected_params, spec)
    if spec.issuer is not None and "openid" in spec.default_scopes:
        # An OpenID provider: its id_token (OIDC Core §3.1.3.3) was verified with its keys.
        assert grant.id_token is not None, explain(stack, name)
        assert any(r.accepted for r in stack.emulator.requests(name, "jwks")), explain(stack, name)
    else:
        assert grant.id_token is None
    if spec.pkce:
        # The authorization request carried an S256 code_challenge, and the code exchange the
        # code_verifier that the emulator checked against it (RFC 7636 §4.6).
        assert grant.code_challenge is not None and grant.code_verifier is not None, explain(
            stack, name
        )
        assert s256(grant.code_verifier) == grant.code_challenge
    else:
        assert grant.code_challenge is None and grant.code_verifier is None
    for value in emulation.link_params.values():  # the URLs were filled for this connection
        paths = [r.path for r in stack.emulator.requests(name, "token") if r.accepted]
        assert any(f"/{value}/" in path for path in paths), paths
    if spec.expiry == "introspection":
        assert first["expires_at"] is not None, "the expiry comes from introspection"
        introspected = [r for r in stack.emulator.requests(name, "introspect") if r.accepted]
        assert introspected, explain(stack, name)
        assert emulation.expires_in is not None
        left = datetime.fromisoformat(first["expires_at"]) - datetime.now(UTC)
        assert left.total_seconds() > 0.9 * emulation.expires_in, "the introspected exp"

    if spec.refresh_tokens == "none":
        assert grant.refresh_token is None
        # Asking for more than the provider's lifetime serves the token while it is in
        # its first three quarters (no refresh storm), and there is nothing to refresh.
        again = get_token(stack, name, *ids, min_ttl=FORCE)
        assert again.status_code == 200, again.text
        assert again.json()["access_token"] == first["access_token"]
        assert not stack.emulator.requests(name, "token")[1:], "no refresh can be attempted"
    else:
        second = refresh_ok(stack, name, *ids)
        third = refresh_ok(stack, name, *ids)
        assert first["access_token"] != second["access_token"] != third["access_token"]
        assert stack.emulator.grant_of(third["access_token"]) is grant
        assert len(grant.refreshed_with) == 2, explain(stack, name)
        if spec.refresh_tokens == "rotating":
            assert grant.refreshed_with == grant.refresh_tokens[:2], "the rotated one is kept"
            assert len(set(grant.refresh_tokens)) == 3
        else:
            assert grant.refreshed_with == grant.refresh_tokens * 2, "the static one is kept"
        other = grant.secondary
        if other is not None:  # a second grant in the answer, refreshed along (Slack user)
            assert other.refreshed_with == other.refresh_tokens[:2], explain(stack, name)
        assert_params(third["params"], emulation.expected_params, spec)
        row = connection(stack, name, workspace_id)
        assert row["status"] == "active" and row["has_refresh_token"], row

        stack.emulator.control(name, "kill")
        try:
            dead = refresh(stack, name, *ids)
        finally:
            stack.emulator.control(name, "heal")
        assert dead.status_code == 409, f"{dead.text}; {explain(stack, name)}"
        assert dead.json()["code"] == "reauthorization_required"
        row = connection(stack, name, workspace_id)
        assert row["status"] == "needs_reauth", row
        assert row["last_error"], row
        code = dead_grant_code(spec, emulation)
        assert code is not None and code in row["last_error"], row["last_error"]

    target = revocation_target(stack, spec, grant)
    outcome = delete(stack, name, workspace_id, actor_id)
    assert outcome["deleted"] is True
    if spec.revocation_endpoint is None:
        assert outcome["revoked"] is None, outcome
        assert not stack.emulator.requests(name, "revoke")
    else:
        assert outcome["revoked"] is True, f"{outcome}; {explain(stack, name)}"
        assert grant.revoked_with == [target], "the documented token was revoked"
    assert get_token(stack, name, *ids).status_code == 404


# --- provider specifics ------------------------------------------------------------------------


def test_slack_user_token_only_install(stack: Stack) -> None:
    """Only user scopes: the token answer has no top-level access_token, the user token is
    under ``authed_user`` (the catalog's ``token_path``)."""
    name = "slack"
    spec = CATALOG[name]
    variant = EMULATIONS[name].variants["user_only"]
    ids = new_ids(name)
    stack.emulator.control(name, "variant/user_only")
    try:
        connect(stack, name, *ids, {})
    finally:
        stack.emulator.control(name, "variant/default")
    first = token_ok(stack, name, *ids)
    assert first["access_token"].startswith("xoxe.xoxp-"), "the user token is stored"
    assert_params(first["params"], variant["expected_params"], spec)
    assert "bot_user_id" not in first["params"]
    grant = stack.emulator.grant_of(first["access_token"])
    second = refresh_ok(stack, name, *ids)
    assert second["access_token"] != first["access_token"]
    assert grant.refreshed_with == grant.refresh_tokens[:1]
    assert_params(second["params"], variant["expected_params"], spec)
    outcome = delete(stack, name, *ids)
    assert outcome["revoked"] is True, f"{outcome}; {explain(stack, name)}"
    assert grant.revoked_with == [second["access_token"]]


def test_unknown_error_body_degrades_and_is_not_quoted(stack: Stack) -> None:
    """A 4xx refresh answer without an error field is not a dead grant: the connection is
    ``degraded``, its still-valid token is served, and the body's values are not kept."""
    name = "gitlab"
    ids = new_ids(name)
    connect(stack, name, *ids, {})
    first = token_ok(stack, name, *ids)
    stack.emulator.control(name, "garble")
    try:
        response = refresh(stack, name, *ids)
    finally:
        stack.emulator.control(name, "heal")
    assert response.status_code == 200, response.text
    assert response.json()["access_token"] == first["access_token"]
    row = connection(stack, name, ids[0])
    assert row["status"] == "degraded", row
    assert row["last_error"] and "SECRET123" not in row["last_error"], row
    assert "SECRET123" not in json.dumps(row)
    delete(stack, name, *ids)


@pytest.mark.parametrize(
    "shop",
    [
        "evil.com",
        "acme.myshopify.com.evil.com",
        "evil.com/acme.myshopify.com",
        "acme.myshopify.com@evil.com",
        "ACME.myshopify.com",
        "",
    ],
)
def test_shopify_refuses_a_shop_outside_myshopify(stack: Stack, shop: str) -> None:
    """A shop that is not ``<name>.myshopify.com`` is refused when the link is created:
    nothing (least of all the client secret) is sent anywhere."""
    before = len(stack.emulator.log)
    workspace_id, actor_id = new_ids("shopify")
    body = {
        "provider": "shopify",
        "workspace_id": workspace_id,
        "actor_id": actor_id,
        "params": {"shop": shop},
    }
    response = stack.api.post("/v1/connect-links", json=body)
    assert 400 <= response.status_code < 500, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert len(stack.emulator.log) == before
    # Without a shop the link is made, and its page asks the end user for the shop, with the
    # same rule (tests/service/test_pages.py walks that form in a browser).
    missing = stack.api.post("/v1/connect-links", json={**body, "params": {}})
    assert missing.status_code == 201, missing.text
    form = httpx.get(missing.json()["url"])
    assert form.status_code == 200 and 'name="shop"' in form.text


def test_shopify_shop_reaches_the_token_url(stack: Stack) -> None:
    name = "shopify"
    ids = new_ids(name)
    before = len(stack.emulator.requests(name, "token"))
    connect(stack, name, *ids, {"shop": "acme.myshopify.com"})
    requests = stack.emulator.requests(name, "token")[before:]
    assert [r.path for r in requests] == ["/shopify/acme.myshopify.com/token"]
    assert requests[0].accepted, requests[0].reason
    assert token_ok(stack, name, *ids)["params"]["shop"] == "acme.myshopify.com"
    delete(stack, name, *ids)


def paths_since(stack: Stack, name: str, role: str, before: int) -> list[str]:
    """The paths of the requests to ``role`` of provider ``name`` after the first ``before``."""
    return [r.path for r in stack.emulator.requests(name, role)[before:]]


def test_zoho_redeems_refreshes_and_revokes_at_the_callbacks_accounts_server(
    stack: Stack,
) -> None:
    """A Zoho account of the EU data centre: the authorization request goes to
    accounts.zoho.com, the callback names accounts-server https://accounts.zoho.eu, and the
    code exchange, the refresh and the revocation all go there (Zoho's multi-DC docs)."""
    name = "zoho"
    ids = new_ids(name)
    before = {role: len(stack.emulator.requests(name, role)) for role in ("authorize", "token")}
    connect(stack, name, *ids, {})
    assert paths_since(stack, name, "authorize", before["authorize"]) == [
        "/zoho/zoho.com/authorize"
    ]
    assert paths_since(stack, name, "token", before["token"]) == ["/zoho/accounts.zoho.eu/token"]
    params = token_ok(stack, name, *ids)["params"]
    assert params["accounts_server"] == "https://accounts.zoho.eu"
    refresh_ok(stack, name, *ids)
    assert paths_since(stack, name, "token", before["token"] + 1) == [
        "/zoho/accounts.zoho.eu/token"
    ]
    revokes = len(stack.emulator.requests(name, "revoke"))
    assert delete(stack, name, *ids)["revoked"] is True, explain(stack, name)
    assert paths_since(stack, name, "revoke", revokes) == ["/zoho/accounts.zoho.eu/revoke"]


@pytest.mark.parametrize(
    ("region", "authorization", "token"),
    [
        ("NA", "www.amazon.com", "api.amazon.com"),
        ("EU", "eu.account.amazon.com", "api.amazon.co.uk"),
        ("FE", "apac.account.amazon.com", "api.amazon.co.jp"),
    ],
)
def test_amazon_region_picks_its_hosts(
    stack: Stack, region: str, authorization: str, token: str
) -> None:
    """Login with Amazon in a region: the authorization request, the code exchange and the
    refreshes go only to that region's hosts (Amazon Ads' authorization-grants page, the
    data-portability LWA token page)."""
    name = "amazon"
    ids = new_ids(name)
    roles = ("authorize", "token")
    before = {role: len(stack.emulator.requests(name, role)) for role in roles}
    connect(stack, name, *ids, {"region": region})
    assert paths_since(stack, name, "authorize", before["authorize"]) == [
        f"/amazon/{authorization}/authorize"
    ]
    assert token_ok(stack, name, *ids)["params"]["region"] == region
    refresh_ok(stack, name, *ids)
    assert paths_since(stack, name, "token", before["token"]) == [f"/amazon/{token}/token"] * 2
    delete(stack, name, *ids)


@pytest.mark.parametrize("region", ["eu", "US", "EU.", "apac.account.amazon.com", "JP"])
def test_amazon_refuses_an_unknown_region(stack: Stack, region: str) -> None:
    """A region that is not NA, EU or FE is refused when the link is made."""
    ids = new_ids("amazon")
    body = {"provider": "amazon", "workspace_id": ids[0], "actor_id": ids[1]}
    response = stack.api.post("/v1/connect-links", json={**body, "params": {"region": region}})
    assert response.status_code == 422, response.text


@pytest.mark.parametrize(
    ("region", "authorization", "api"),
    [
        ("US", "app.intercom.com", "api.intercom.io"),
        ("EU", "app.eu.intercom.com", "api.eu.intercom.io"),
        ("AU", "app.au.intercom.com", "api.au.intercom.io"),
    ],
)
def test_intercom_region_picks_its_hosts(
    stack: Stack, region: str, authorization: str, api: str
) -> None:
    """An Intercom workspace in a region: the authorization request goes only to that
    region's app host and the code exchange only to its API host (Intercom's REST API page,
    Regional Hosting); nothing of the connection goes to another region's hosts."""
    name = "intercom"
    ids = new_ids(name)
    before = len(stack.emulator.requests(name))
    connect(stack, name, *ids, {"region": region})
    assert token_ok(stack, name, *ids)["params"]["region"] == region
    delete(stack, name, *ids)
    made = [(r.role, r.path) for r in stack.emulator.requests(name)[before:]]
    assert made == [
        ("authorize", f"/intercom/{authorization}/authorize"),
        ("token", f"/intercom/{api}/token"),
    ], explain(stack, name)


@pytest.mark.parametrize("region", ["us", "eu", "UK", "EU.", "api.eu.intercom.io", "app.au"])
def test_intercom_refuses_an_unknown_region(stack: Stack, region: str) -> None:
    """A region that is not US, EU or AU is refused when the link is made."""
    ids = new_ids("intercom")
    body = {"provider": "intercom", "workspace_id": ids[0], "actor_id": ids[1]}
    response = stack.api.post("/v1/connect-links", json={**body, "params": {"region": region}})
    assert response.status_code == 422, response.text


@pytest.mark.parametrize("variant", sorted(EMULATIONS["zoho"].variants))
def test_zoho_refuses_an_accounts_server_outside_zoho(stack: Stack, variant: str) -> None:
    """A callback whose accounts-server is not one of Zoho's accounts hosts is refused: the
    code (and the client secret) are sent nowhere, and no connection is kept."""
    name = "zoho"
    ids = new_ids(name)
    tokens = len(stack.emulator.requests(name, "token"))
    stack.emulator.control(name, f"variant/{variant}")
    try:
        link = stack.api.post(
            "/v1/connect-links",
            json={"provider": name, "workspace_id": ids[0], "actor_id": ids[1]},
        )
        assert link.status_code == 201, link.text
        page = browse(link.json()["url"])
    finally:
        stack.emulator.control(name, "variant/default")
    assert "Connected" not in page.text
    assert stack.emulator.requests(name, "token")[tokens:] == []
    assert get_token(stack, name, *ids).status_code == 404
