"""The pages people see, in a real browser (Debian's Chromium with Playwright): every page a
connect flow can end on, the connection-parameter form, and the admin console.

The service runs against the provider emulator (Google and Shopify as their documentation
says they behave) with branding and an admin credential configured. Screenshots go to
``$OAUTHVAULT_TEST_ARTIFACTS`` (default ``/tmp/oauthvault-pages``); docs/admin-console.png
and docs/connect-page.png are copies of them.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest

from oauthvault import AsyncOAuthTokenCache, Settings
from oauthvault.providers import load_catalog
from oauthvault.service.admin_session import generate_admin_credential, hash_admin_credential
from oauthvault.service.links import ConnectLink, ConnectLinks

from tests.helpers.browser import open_connect_link
from tests.helpers.emulated_service import EmulatedService, emulated_service
from tests.helpers.emulations import EMULATIONS
from tests.helpers.net import free_port
from tests.helpers.service_harness import press_continue

# The pages are the same on every Python: run them once (first Python of scripts/test).
pytestmark = [pytest.mark.once, pytest.mark.slow]

if TYPE_CHECKING:
    from playwright.sync_api import Page

ARTIFACTS = Path(os.environ.get("OAUTHVAULT_TEST_ARTIFACTS", "/tmp/oauthvault-pages"))  # noqa: S108
CATALOG = {name: spec for name, spec in load_catalog().items() if name in ("google", "shopify")}
CREDENTIAL = generate_admin_credential()
PRODUCT = "Acme CRM"
RFC_6749_CODES = (
    "access_denied",
    "invalid_request",
    "unauthorized_client",
    "unsupported_response_type",
    "invalid_scope",
    "server_error",
    "temporarily_unavailable",
)


@pytest.fixture(scope="module")
def site(postgres_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmulatedService]:
    closed = free_port()  # nothing listens here: the "down" provider cannot be discovered
    extra = f"""
[providers.down]
issuer = "http://127.0.0.1:{closed}"
client_id = "down-client"
client_secret = "down-secret"

[branding]
product_name = "{PRODUCT}"
accent_color = "#0f766e"

[admin]
credential_sha256 = "{hash_admin_credential(CREDENTIAL)}"
"""
    with emulated_service(
        CATALOG,
        EMULATIONS,
        database_url=postgres_url,
        directory=tmp_path_factory.mktemp("pages"),
        extra_toml=extra,
    ) as service:
        yield service


def shot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def link(site: EmulatedService, provider: str, actor_id: str, **body: Any) -> str:
    response = site.api.post(
        "/v1/connect-links",
        json={"provider": provider, "workspace_id": "ws_pages", "actor_id": actor_id, **body},
    )
    assert response.status_code == 201, response.text
    return str(response.json()["url"])


def landed(page: Page, path_end: str) -> dict[str, str]:
    """The page's title, message and advice, after checking the address bar is clean."""
    address = urlsplit(page.url)
    assert address.path.endswith(path_end), page.url
    assert "code=" not in page.url and "state=" not in page.url, page.url
    return {
        "title": page.inner_text("#title"),
        "message": page.inner_text("#message"),
        "text": page.inner_text("body"),
    }


def styled(page: Page) -> None:
    """The page has its stylesheet (the CSP allowed it), the branding and no script."""
    family = page.evaluate("getComputedStyle(document.body).fontFamily")
    assert "system-ui" in family, family  # not the browser's default serif
    assert PRODUCT in page.inner_text(".brand")
    assert page.locator("script").count() == 0


# --- connect pages -----------------------------------------------------------------------------


def test_a_connect_flow_ends_on_a_styled_page_with_a_clean_address_bar(tab, site):
    responses: list[Any] = []
    tab.on("response", lambda response: responses.append(response))
    open_connect_link(tab, link(site, "google", "page-ok"))
    tab.wait_for_selector("#title")
    words = landed(tab, "/oauth/google/result")
    assert words["title"] == "Connected"
    assert words["message"] == "Your Google account is connected."
    assert "You can close this window." in words["text"]
    styled(tab)
    shot(tab, "connect-connected")
    final = responses[-1]
    policy = final.headers["content-security-policy"]
    assert "default-src 'none'" in policy and "frame-ancestors 'none'" in policy
    assert "script-src" not in policy  # default-src 'none': no script at all
    # The history holds the callback (it redirected at once), never as the page shown.
    callbacks = [r for r in responses if "/oauth/google/callback" in r.url]
    assert callbacks and all(r.status == 303 for r in callbacks)
    token = site.api.get(
        "/v1/connections/token",
        params={"provider": "google", "workspace_id": "ws_pages", "actor_id": "page-ok"},
    ).json()["access_token"]
    assert token not in tab.content()


def through_provider(tab: Page, site: EmulatedService, answer: Any) -> None:
    """Start the next connect link in ``tab`` for real (its confirmation page, our
    redirect, the binding cookie),
    and let ``answer(provider_url, headers)`` say where the browser goes instead of the
    provider's page (Playwright cannot intercept a redirect's later hops)."""

    def route(intercepted: Any) -> None:
        ours = intercepted.fetch(max_redirects=0)
        headers = {k: v for k, v in ours.headers.items() if k.lower() == "set-cookie"}
        status, location = answer(ours.headers["location"])
        intercepted.fulfill(status=status, headers={**headers, "location": location})

    tab.route(re.compile(r".*/oauth/[a-z]+/authorize$"), route)  # the confirmation's POST


@pytest.mark.parametrize("code", RFC_6749_CODES)
def test_each_error_the_provider_sends_has_its_page(tab, site, code):
    def answer(provider_url: str) -> tuple[int, str]:  # the provider says no
        state = parse_qs(urlsplit(provider_url).query)["state"][0]
        query = urlencode({"error": code, "state": state})
        return 302, f"{site.base_url}/oauth/google/callback?{query}"

    through_provider(tab, site, answer)
    open_connect_link(tab, link(site, "google", f"page-{code}"))
    tab.wait_for_selector("#title")
    words = landed(tab, "/oauth/google/result")
    assert tab.inner_text("#code") == code
    assert "Google" in words["message"]
    assert "The provider said" not in words["text"]
    styled(tab)
    shot(tab, f"connect-{code}")
    if code == "access_denied":
        assert words["title"] == "Not connected"
        assert f"You chose not to give {PRODUCT} access" in words["message"]


def test_a_used_link_an_unknown_provider_and_an_unreachable_one_have_pages(tab, site):
    used = link(site, "google", "page-used")
    open_connect_link(tab, used)
    tab.wait_for_selector("#title")
    assert tab.inner_text("#title") == "Connected"
    response = tab.goto(used)
    assert response is not None and response.status == 400
    assert tab.inner_text("#title") == "Link expired"
    shot(tab, "connect-link-expired")

    response = tab.goto(f"{site.base_url}/oauth/nope/authorize?link=x")
    assert response is not None and response.status == 404
    assert tab.inner_text("#title") == "Unknown connection"
    assert "nope" not in tab.inner_text("main")
    shot(tab, "connect-unknown-provider")

    # "down" is configured but its issuer does not answer: the link is made by the library
    # (the API would discover the provider first), and its page says so, as a page.
    async def make_link() -> str:
        settings = Settings.load(
            database_url=site.database_url, redis_url="", oauth_encryption_key=site.encryption_key
        )
        async with AsyncOAuthTokenCache(settings=settings) as vault:
            token, _ = await ConnectLinks(vault).create(
                ConnectLink("down", "ws_pages", "page-down", None)
            )
        return token

    with ThreadPoolExecutor(1) as thread:  # Playwright's loop runs in this one
        token = thread.submit(asyncio.run, make_link()).result()
    response = tab.goto(f"{site.base_url}/oauth/down/authorize?link={token}")
    assert response is not None and response.status == 502
    assert response.headers["content-type"].startswith("text/html")
    assert tab.inner_text("#title") == "Cannot reach down"
    styled(tab)
    shot(tab, "connect-provider-unreachable")


def test_a_callback_opened_in_another_browser_has_its_page(chromium, site):
    first, second = chromium.new_context(), chromium.new_context()
    try:
        page = first.new_page()
        caught: list[str] = []

        def answer(provider_url: str) -> tuple[int, str]:  # the callback URL, kept
            at_provider = httpx.get(provider_url)
            caught.append(str(at_provider.url.join(at_provider.headers["location"])))
            return 302, f"{site.base_url}/healthz"

        through_provider(page, site, answer)
        open_connect_link(page, link(site, "google", "page-stolen"))
        assert caught, "the provider did not redirect to the callback"
        other = second.new_page()
        other.goto(caught[0])
        other.wait_for_selector("#title")
        words = landed(other, "/oauth/google/result")
        assert words["title"] == "Open it in the same browser"
        shot(other, "connect-other-browser")
    finally:
        first.close()
        second.close()
    listed = site.api.get("/v1/connections", params={"workspace_id": "ws_pages"}).json()
    assert "page-stolen" not in [row["actor_id"] for row in listed]


def test_a_link_without_the_shop_asks_for_it_with_the_catalog_rule(tab, site):
    tab.goto(link(site, "shopify", "page-shop"))
    tab.wait_for_selector("#param-shop")
    assert tab.inner_text("#title") == "Connect Shopify"
    styled(tab)
    shot(tab, "connect-parameter-form")
    tab.fill("#param-shop", "evil.com")
    tab.click("#continue")
    tab.wait_for_selector("#error-shop")
    assert "valid" in tab.inner_text("#error-shop")
    assert tab.get_attribute("#param-shop", "aria-invalid") == "true"
    tab.fill("#param-shop", "acme.myshopify.com")
    tab.click("#continue")
    tab.wait_for_url(re.compile(r".*/oauth/shopify/result$"))
    assert tab.inner_text("#title") == "Connected"
    listed = site.api.get(
        "/v1/connections", params={"workspace_id": "ws_pages", "provider": "shopify"}
    ).json()
    assert [row["params"]["shop"] for row in listed] == ["acme.myshopify.com"]


# --- the admin console -------------------------------------------------------------------------


def sign_in(tab: Page, site: EmulatedService) -> None:
    tab.goto(f"{site.base_url}/admin")
    assert urlsplit(tab.url).path == "/admin/login"
    tab.fill("#credential", CREDENTIAL)
    tab.click("#sign-in")
    tab.wait_for_selector("#by-provider")


def test_the_console_needs_the_credential_and_its_cookie_is_strict(tab, site):
    tab.goto(f"{site.base_url}/admin/connections")
    assert urlsplit(tab.url).path == "/admin/login"
    tab.fill("#credential", "ova_wrong")
    tab.click("#sign-in")
    tab.wait_for_selector("#error")
    assert "not right" in tab.inner_text("#error")
    sign_in(tab, site)
    [cookie] = [c for c in tab.context.cookies() if c["name"] == "oauthvault_admin"]
    assert cookie["httpOnly"] is True and cookie["sameSite"] == "Strict"
    assert cookie["path"] == "/admin" and cookie["expires"] > 0
    assert cookie["secure"] is False  # http here; https public URLs set Secure (below)
    assert CREDENTIAL not in tab.content()


def test_without_a_session_or_with_a_wrong_csrf_token_nothing_changes(tab, site):
    link(site, "google", "page-csrf")  # a link alone stores nothing; connect one first
    open_connect_link(tab, link(site, "google", "page-csrf"))
    tab.wait_for_selector("#title")
    ids = {"provider": "google", "workspace_id": "ws_pages", "actor_id": "page-csrf"}
    with httpx.Client(base_url=site.base_url, timeout=10) as anonymous:
        refused = anonymous.post("/admin/connection/revoke", data={**ids, "confirm": "yes"})
        assert refused.status_code == 403
        assert anonymous.get("/admin/connections").status_code == 303
    sign_in(tab, site)
    session = {c["name"]: c["value"] for c in tab.context.cookies()}["oauthvault_admin"]
    with httpx.Client(
        base_url=site.base_url, timeout=10, cookies={"oauthvault_admin": session}
    ) as forged:
        for csrf in ("", "wrong"):
            response = forged.post(
                "/admin/connection/revoke", data={**ids, "confirm": "yes", "csrf": csrf}
            )
            assert response.status_code == 403
    listed = site.api.get("/v1/connections", params={"workspace_id": "ws_pages"}).json()
    assert "page-csrf" in [row["actor_id"] for row in listed]


def test_search_filter_detail_refresh_reconnect_and_revoke(tab, site):
    for actor in ("admin-a", "admin-b"):
        open_connect_link(tab, link(site, "google", actor))
        tab.wait_for_selector("#title")
    tokens = [
        site.api.get(
            "/v1/connections/token",
            params={"provider": "google", "workspace_id": "ws_pages", "actor_id": actor},
        ).json()["access_token"]
        for actor in ("admin-a", "admin-b")
    ]
    sign_in(tab, site)
    assert "google" in tab.inner_text("#counts")
    shot(tab, "admin-overview")

    tab.goto(f"{site.base_url}/admin/connections")
    tab.fill("#workspace_id", "ws_pages")
    tab.select_option("#provider", "google")
    tab.select_option("#status", "active")
    tab.click("#search")
    tab.wait_for_selector("#results")
    shown = tab.inner_text("#results")
    assert "admin-a" in shown and "admin-b" in shown
    shot(tab, "admin-connections")
    tab.select_option("#status", "needs_reauth")
    tab.click("#search")
    tab.wait_for_selector("#empty")

    tab.goto(
        f"{site.base_url}/admin/connection?"
        + urlencode({"provider": "google", "workspace_id": "ws_pages", "actor_id": "admin-a"})
    )
    assert tab.inner_text("#status") == "active"
    assert tab.inner_text("#audit")  # the token read above was recorded
    assert "served" in tab.inner_text("#audit")
    shot(tab, "admin-connection")
    tab.click("#refresh")
    tab.wait_for_selector("#notice")
    assert tab.inner_text("#notice") == "The connection was refreshed."
    assert tab.inner_text("#last-refresh") != "never"
    refreshed = site.api.get(
        "/v1/connections/token",
        params={"provider": "google", "workspace_id": "ws_pages", "actor_id": "admin-a"},
    ).json()["access_token"]
    tokens.append(refreshed)
    tab.reload()
    assert not any(token in tab.content() for token in tokens)

    tab.click("#reconnect")
    tab.wait_for_selector("#link")
    reconnect = tab.input_value("#link")
    assert not any(token in tab.content() for token in tokens)
    assert reconnect.startswith(f"{site.base_url}/oauth/google/authorize?link=")

    tab.goto(
        f"{site.base_url}/admin/connection?"
        + urlencode({"provider": "google", "workspace_id": "ws_pages", "actor_id": "admin-b"})
    )
    tab.click("#revoke")
    tab.wait_for_selector("#confirm")
    tab.click("#confirm")
    tab.wait_for_selector("#notice")
    assert "deleted" in tab.inner_text("#notice")
    listed = site.api.get("/v1/connections", params={"workspace_id": "ws_pages"}).json()
    assert "admin-b" not in [row["actor_id"] for row in listed]

    # The reconnect link works once, for the same connection.
    with httpx.Client(timeout=10, follow_redirects=True) as browser:
        reconnected = press_continue(browser, browser.get(reconnect))
        assert reconnected.url.path == "/oauth/google/result"
        assert '<h1 id="title">Connected</h1>' in reconnected.text
        again = browser.get(reconnect)
        assert again.status_code == 400 and "Link expired" in again.text
    assert not any(token in tab.content() for token in tokens)


def test_no_console_page_shows_a_token(tab, site):
    open_connect_link(tab, link(site, "google", "admin-scan"))
    tab.wait_for_selector("#title")
    token = site.api.get(
        "/v1/connections/token",
        params={"provider": "google", "workspace_id": "ws_pages", "actor_id": "admin-scan"},
    ).json()["access_token"]
    sign_in(tab, site)
    ids = urlencode({"provider": "google", "workspace_id": "ws_pages", "actor_id": "admin-scan"})
    for path in (
        "/admin",
        "/admin/connections",
        "/admin/connections?workspace_id=ws_pages",
        f"/admin/connection?{ids}",
        f"/admin/connection/revoke?{ids}",
    ):
        tab.goto(f"{site.base_url}{path}")
        assert token not in tab.content(), path
        assert CREDENTIAL not in tab.content(), path


def own_app(site: EmulatedService, public_url: str = "http://testserver") -> Any:
    """The site's configuration in a service of its own (its own sign-in throttle)."""
    from oauthvault.service.app import create_app
    from oauthvault.service.config import load_service_config

    config = load_service_config(site.config_path, {"OAUTHVAULT_PUBLIC_URL": public_url})
    settings = Settings.load(
        database_url=site.database_url, redis_url="", oauth_encryption_key=site.encryption_key
    )
    return create_app(config, settings)


def login_csrf(client: Any) -> str:
    form = client.get("/admin/login")
    found = re.search(r'name="csrf" value="([^"]+)"', form.text)
    assert found is not None
    return found[1]


def test_failed_sign_ins_are_limited_and_logged_without_the_credential(site, caplog):
    from fastapi.testclient import TestClient

    caplog.set_level(logging.INFO, logger="oauthvault.admin")
    with TestClient(own_app(site)) as client:
        csrf = login_csrf(client)
        statuses = [
            client.post(
                "/admin/login", data={"csrf": csrf, "credential": f"ova_guess-{n}"}
            ).status_code
            for n in range(6)
        ]
        # Locked out: the right credential is refused too, until the window has passed.
        right = client.post("/admin/login", data={"csrf": csrf, "credential": CREDENTIAL})
    assert statuses == [401] * 5 + [429]
    assert right.status_code == 429
    assert "admin sign-in failed from testclient" in caplog.text
    assert "too many failures" in caplog.text
    assert "ova_guess" not in caplog.text and CREDENTIAL not in caplog.text


def test_the_sign_in_form_needs_its_own_csrf_token(site):
    from fastapi.testclient import TestClient

    with TestClient(own_app(site)) as client:
        login_csrf(client)  # the cookie is set, but the form's token is not sent back
        refused = client.post("/admin/login", data={"csrf": "forged", "credential": CREDENTIAL})
    assert refused.status_code == 403
    assert "oauthvault_admin=" not in refused.headers.get("set-cookie", "")


def test_an_https_public_url_makes_the_session_cookie_secure(site):
    from fastapi.testclient import TestClient

    app = own_app(site, "https://vault.example")
    with TestClient(app, base_url="https://vault.example") as client:
        signed = client.post(
            "/admin/login",
            data={"csrf": login_csrf(client), "credential": CREDENTIAL},
            follow_redirects=False,
        )
    assert signed.status_code == 303
    cookie = signed.headers["set-cookie"]
    assert "oauthvault_admin=" in cookie
    assert "Secure" in cookie and "HttpOnly" in cookie and "SameSite=strict" in cookie


def test_signing_out_ends_the_session_in_the_browser(tab, site):
    sign_in(tab, site)
    tab.click("#logout")
    tab.wait_for_selector("#credential")
    assert "oauthvault_admin" not in {c["name"] for c in tab.context.cookies()}
    tab.goto(f"{site.base_url}/admin/connections")
    assert urlsplit(tab.url).path == "/admin/login"


def test_pages_of_fifty_with_next_and_first_links(tab, site):
    for n in range(55):
        stored = site.api.put(
            "/v1/connections",
            json={
                "provider": "google",
                "workspace_id": "ws_paged",
                "actor_id": f"user-{n:02d}",
                "access_token": f"paged-token-{n}",
                "expires_in": 3600,
            },
        )
        assert stored.status_code == 204
    sign_in(tab, site)
    tab.goto(f"{site.base_url}/admin/connections?workspace_id=ws_paged")
    assert tab.locator("#results tbody tr").count() == 50
    assert "user-49" in tab.inner_text("#results") and "user-50" not in tab.inner_text("#results")
    tab.click("#next-page")
    tab.wait_for_selector("#first-page")
    assert tab.locator("#results tbody tr").count() == 5
    assert "user-54" in tab.inner_text("#results")
    assert tab.locator("#next-page").count() == 0
    assert not any(f"paged-token-{n}" in tab.content() for n in range(55))
    tab.click("#first-page")
    assert tab.locator("#results tbody tr").count() == 50
    tab.goto(f"{site.base_url}/admin/connections?after=WzEsMiwzXQ")  # [1,2,3]: not ours
    assert "is not a page of this listing" in tab.inner_text("#error")


def test_a_connection_whose_tokens_do_not_decrypt_can_still_be_deleted(tab, site):
    import psycopg

    stored = site.api.put(
        "/v1/connections",
        json={
            "provider": "google",
            "workspace_id": "ws_broken",
            "actor_id": "broken",
            "access_token": "broken-token",
            "refresh_token": "broken-refresh",
            "expires_in": 3600,
        },
    )
    assert stored.status_code == 204
    with psycopg.connect(site.database_url, autocommit=True) as pg:  # moved from another row
        pg.execute(
            "UPDATE oauth_tokens SET access_token_encrypted = (SELECT access_token_encrypted"
            " FROM oauth_tokens WHERE actor_id <> 'broken' LIMIT 1) WHERE actor_id = 'broken'"
        )
    sign_in(tab, site)
    ids = urlencode({"provider": "google", "workspace_id": "ws_broken", "actor_id": "broken"})
    tab.goto(f"{site.base_url}/admin/connection/revoke?{ids}")
    tab.click("#confirm")
    tab.wait_for_selector("#notice")
    assert "did not confirm the revocation" in tab.inner_text("#notice")
    listed = site.api.get("/v1/connections", params={"workspace_id": "ws_broken"}).json()
    assert listed == []
