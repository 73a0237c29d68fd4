"""The connect flow in a real browser: a host app's Connect button, the provider's login and
consent pages, and back to the host app, driven through Debian's Chromium with Playwright.

Chromium (``/usr/bin/chromium``, installed by scripts/test) and Playwright (the ``test`` extra)
are required: without either these tests fail, they never skip.
"""

from __future__ import annotations

import contextlib
import html
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from tests.helpers.browser import launch_chromium
from tests.helpers.service_harness import ConnectEnvironment, running_environment

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

# A fixed, well-known place to look at the success page after a run (not asserted).
SCREENSHOT = Path("/tmp/oauthvault-browser-success.png")  # noqa: S108
WORKSPACE = "ws_browser"


# --- the host app: a settings page with a Connect button, and the page the flow returns to ----


class HostApp:
    """A tiny web app on 127.0.0.1 standing in for the SaaS product that embeds oauthvault.

    ``connect_pages`` maps a path to the connect link its Connect button points at; the test
    creates the link through the API and registers it before the browser asks for the page.
    ``/app/done`` is the return URL: it shows the outcome from the query string.
    """

    def __init__(self) -> None:
        self.connect_pages: dict[str, str] = {}
        self.requests: list[str] = []
        host = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                host.requests.append(self.path)
                status, body = host.render(self.path)
                payload = body.encode()
                self.send_response(status)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.return_prefix = f"{self.url}/app/"
        self.return_url = f"{self.url}/app/done"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def start(self) -> HostApp:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)

    def render(self, target: str) -> tuple[int, str]:
        parts = urlsplit(target)
        if parts.path in self.connect_pages:
            href = html.escape(self.connect_pages[parts.path], quote=True)
            return 200, page(
                "Integrations",
                f'<p>Let the app read your mail.</p><a id="connect" href="{href}">Connect</a>',
            )
        if parts.path == "/app/done":
            query = {key: values[0] for key, values in parse_qs(parts.query).items()}
            fields = {
                "status": query.get("oauthvault_status"),
                "provider": query.get("oauthvault_provider"),
                "error": query.get("oauthvault_error"),
            }
            rows = "".join(
                f'<p>{name}: <b id="{name}">{html.escape(value)}</b></p>'
                for name, value in fields.items()
                if value is not None
            )
            return 200, page("Connection result", rows)
        return 404, page("Not found", "")


def page(title: str, body: str) -> str:
    return (
        f'<!doctype html><html><head><meta charset="utf-8"><title>{title}</title>'
        "<style>body{font-family:sans-serif;margin:2em}"
        "#connect{display:inline-block;padding:.6em 1.2em;background:#1a73e8;color:#fff;"
        "border-radius:4px;text-decoration:none}</style></head>"
        f"<body><h1>{title}</h1>{body}</body></html>"
    )


# --- fixtures ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def host() -> Iterator[HostApp]:
    app = HostApp().start()
    yield app
    app.stop()


@pytest.fixture(scope="module")
def env(tmp_path_factory, postgres_url, _redis_checked, host) -> Iterator[ConnectEnvironment]:
    from oauthvault import generate_key

    with running_environment(
        tmp_path_factory.mktemp("browser"),
        postgres_url,
        _redis_checked,
        generate_key(),
        auto_approve=False,
        extra_return_urls=[host.return_prefix],
    ) as environment:
        yield environment


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with launch_chromium() as chromium:
        yield chromium


@pytest.fixture
def tab(browser: Browser) -> Iterator[Page]:
    """A fresh page in its own context: no cookies from other tests, at the provider or ours."""
    context = browser.new_context()
    context.set_default_timeout(15_000)
    yield context.new_page()
    context.close()


# --- the flow ----------------------------------------------------------------------------------


def open_connect_page(tab: Page, env: ConnectEnvironment, host: HostApp, actor_id: str) -> None:
    """Create a connect link through the API, put it behind the host's Connect button, open
    that page and click the button."""
    link = env.connect_link(WORKSPACE, actor_id, return_url=host.return_url)
    path = f"/settings/integrations/{actor_id}"
    host.connect_pages[path] = link
    tab.goto(f"{host.url}{path}")
    assert tab.get_attribute("#connect", "href") == link
    tab.click("#connect")


@contextlib.contextmanager
def step(tab: Page, expected: str) -> Iterator[None]:
    """Turn a Playwright timeout into a failure that says where the browser ended up."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    try:
        yield
    except PlaywrightTimeout as error:
        raise AssertionError(
            f"expected {expected}, but the browser is at {tab.url} showing:\n"
            f"{tab.content()[:2000]}\n({error.message.splitlines()[0]})"
        ) from None


def sign_in(tab: Page, env: ConnectEnvironment, username: str) -> None:
    """The provider's login page: a real form on the provider's own origin."""
    with step(tab, "the provider's login page"):
        tab.wait_for_selector("#login")
    assert tab.url.startswith(env.provider.issuer)
    assert tab.title() == "Sign in"
    tab.fill("#login", username)
    tab.click("#submit")
    with step(tab, "the provider's consent page"):
        tab.wait_for_selector("#authorize")
    assert tab.title() == "Authorize access"
    assert tab.text_content("#client") == "oauthvault-test"


def wait_for_return(tab: Page, host: HostApp) -> dict[str, str]:
    with step(tab, f"the host app's return page {host.return_url}"):
        tab.wait_for_url(lambda url: url.startswith(f"{host.return_url}?"))
        tab.wait_for_selector("#status")
    return {key: values[0] for key, values in parse_qs(urlsplit(tab.url).query).items()}


def stored_count(pg, actor_id: str) -> int:
    row = pg.execute(
        "SELECT count(*) FROM oauth_tokens WHERE workspace_id = %s AND actor_id = %s",
        (WORKSPACE, actor_id),
    ).fetchone()
    return int(row[0])


def test_connect_button_login_and_consent_store_a_working_token(tab, env, host, pg):
    actor, username = "browser-alice", "alice.browser@example.test"
    open_connect_page(tab, env, host, actor)
    sign_in(tab, env, username)
    tab.click("#authorize")

    query = wait_for_return(tab, host)
    tab.screenshot(path=str(SCREENSHOT), full_page=True)
    assert query == {"oauthvault_status": "connected", "oauthvault_provider": "local"}
    assert tab.text_content("#status") == "connected"
    assert tab.text_content("#provider") == "local"
    assert stored_count(pg, actor) == 1

    with env.api() as api:
        response = api.get(
            "/v1/connections/token",
            params={"provider": "local", "workspace_id": WORKSPACE, "actor_id": actor},
        )
    assert response.status_code == 200, response.text
    access_token = response.json()["access_token"]
    assert access_token
    userinfo = httpx.get(
        f"{env.provider.issuer}/me",
        headers={"Authorization": f"Bearer {access_token}"},
        timeout=10,
    )
    assert userinfo.status_code == 200, userinfo.text
    assert userinfo.json()["sub"] == username


def test_denying_consent_returns_an_error_and_stores_nothing(tab, env, host, pg):
    actor = "browser-denied"
    open_connect_page(tab, env, host, actor)
    sign_in(tab, env, "denied.browser@example.test")
    tab.click("#deny")

    query = wait_for_return(tab, host)
    assert query["oauthvault_status"] == "error"
    assert query["oauthvault_error"] == "access_denied"
    assert tab.text_content("#status") == "error"
    assert tab.text_content("#error") == "access_denied"
    assert stored_count(pg, actor) == 0
    with env.api() as api:
        response = api.get(
            "/v1/connections/token",
            params={"provider": "local", "workspace_id": WORKSPACE, "actor_id": actor},
        )
    assert response.status_code == 404, response.text
