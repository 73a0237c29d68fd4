"""Sign in with Apple's ``response_mode=form_post`` in a real browser, cross-site.

The emulated Apple runs on ``127.0.0.1`` and the service on ``localhost``: two different
sites, so the provider's auto-submitted POST to our callback is a cross-site POST, and
Chromium does not send the ``SameSite=Lax`` binding cookie with it. The flow must still
complete — through the one-time handle and the browser's following top-level GET, which does
carry the cookie — and must leave no code in the address bar. A browser that did not start
the flow (no binding cookie) must fail at the same point.

Chromium (``/usr/bin/chromium``) and Playwright are required: without either this fails,
it never skips.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from oauthvault import Settings, generate_key
from oauthvault.providers import load_catalog
from oauthvault.service import create_app
from oauthvault.service.apikeys import generate_api_key, hash_api_key
from oauthvault.service.config import load_service_config

from tests.helpers.emulations import EMULATIONS
from tests.helpers.net import free_port
from tests.helpers.provider_emulator import ProviderEmulator, make_clients
from tests.helpers.service_harness import UvicornThread

CHROMIUM = Path("/usr/bin/chromium")
APPLE = {"apple": load_catalog()["apple"]}


@pytest.fixture(scope="module")
def site(postgres_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """(service URL on localhost, API key), with Apple emulated on 127.0.0.1."""
    port = free_port()
    service_url = f"http://localhost:{port}"
    emulator = ProviderEmulator(APPLE, EMULATIONS, make_clients(APPLE), service_url).start()
    try:
        api_key = generate_api_key()
        path = tmp_path_factory.mktemp("form_post") / "oauthvault.toml"
        path.write_text(
            f'[service]\npublic_url = "{service_url}"\n\n'
            f'[[api_keys]]\nname = "t"\nsha256 = "{hash_api_key(api_key)}"\n\n'
            + emulator.config_toml()
        )
        settings = Settings.load(
            database_url=postgres_url, redis_url="", oauth_encryption_key=generate_key()
        )
        server = UvicornThread(create_app(load_service_config(path, {}), settings), port)
        server.start()
        try:
            yield service_url, api_key
        finally:
            server.stop()
    finally:
        emulator.stop()


@pytest.fixture(scope="module")
def chromium() -> Iterator[object]:
    assert CHROMIUM.exists(), "Chromium is required (scripts/test installs it)"
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        try:
            yield browser
        finally:
            browser.close()


def connect_link(site: tuple[str, str], actor: str) -> str:
    service_url, api_key = site
    with httpx.Client(base_url=service_url, timeout=10) as api:
        answer = api.post(
            "/v1/connect-links",
            json={"provider": "apple", "workspace_id": "ws_apple", "actor_id": actor},
            headers={"Authorization": f"Bearer {api_key}"},
        )
    assert answer.status_code == 201, answer.text
    url: str = answer.json()["url"]
    return url


def test_a_cross_site_form_post_completes_in_the_browser_that_started_it(site, chromium):
    context = chromium.new_context()  # type: ignore[attr-defined]
    try:
        page = context.new_page()
        posts: list[tuple[str, str | None]] = []
        page.on(
            "request",
            lambda request: (
                request.method == "POST"
                and "/callback" in request.url
                and posts.append((request.url, request.headers.get("cookie")))
            ),
        )
        page.goto(connect_link(site, "browser-user"))
        page.wait_for_selector("#title")
        assert page.inner_text("#title") == "Connected"
        # The provider's POST was cross-site: the Lax binding cookie did not go with it.
        assert len(posts) == 1 and "oauthvault_binding" not in (posts[0][1] or "")
        assert "code=" not in page.url and "state=" not in page.url
        history = [entry for entry in page.evaluate("() => [document.URL]")]
        assert all("code=" not in entry for entry in history)
    finally:
        context.close()
    service_url, api_key = site
    with httpx.Client(base_url=service_url, timeout=10) as api:
        listed = api.get(
            "/v1/connections",
            params={"workspace_id": "ws_apple"},
            headers={"Authorization": f"Bearer {api_key}"},
        )
    assert [row["actor_id"] for row in listed.json()] == ["browser-user"]


def test_a_handle_opened_in_another_browser_fails(site, chromium):
    first = chromium.new_context()  # type: ignore[attr-defined]
    second = chromium.new_context()  # type: ignore[attr-defined]
    try:
        page = first.new_page()
        resumes: list[str] = []
        page.on(
            "response",
            lambda response: (
                response.status == 303 and resumes.append(response.headers.get("location", ""))
            ),
        )
        # Stop the first browser right at the 303, before it follows the handle.
        with contextlib.suppress(Exception):
            page.route("**/callback?resume=*", lambda route: route.abort())
            page.goto(connect_link(site, "stolen-user"))
            page.wait_for_timeout(500)
        assert resumes and "resume=" in resumes[0]
        other = second.new_page()
        other.goto(resumes[0])
        assert other.inner_text("#title") == "Connection failed"
    finally:
        first.close()
        second.close()
