"""The connect flow in a real browser: a host app's Connect button, the provider's login and
consent pages, and back to the host app, driven through Debian's Chromium with Playwright.

Chromium (``/usr/bin/chromium``, installed by scripts/test) and Playwright (the ``test`` extra)
are required: without either these tests fail, they never skip.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from tests.helpers.host_app import HostApp
from tests.helpers.service_harness import ConnectEnvironment

if TYPE_CHECKING:
    from playwright.sync_api import Page

# The service (``env``) asks for logins and consent in pages, and returns to the host app.
pytestmark = [pytest.mark.slow, pytest.mark.env_options(auto_approve=False, host_app=True)]

# A fixed, well-known place to look at the success page after a run (not asserted).
SCREENSHOT = Path("/tmp/oauthvault-browser-success.png")  # noqa: S108
WORKSPACE = "ws_browser"


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
    with step(tab, "the link's confirmation page"):
        tab.wait_for_selector("#confirm")
    tab.click("#continue")


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
