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
from typing import Any
from urllib.parse import urlsplit

import pytest

from oauthvault.providers import load_catalog

from tests.helpers.browser import open_connect_link
from tests.helpers.emulated_service import EmulatedService, emulated_service
from tests.helpers.emulations import EMULATIONS

pytestmark = pytest.mark.slow  # Chromium

APPLE = {"apple": load_catalog()["apple"]}


@pytest.fixture(scope="module")
def site(postgres_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmulatedService]:
    """The service on localhost, with Apple emulated on 127.0.0.1."""
    with emulated_service(
        APPLE,
        EMULATIONS,
        database_url=postgres_url,
        directory=tmp_path_factory.mktemp("form_post"),
        host="localhost",
    ) as service:
        yield service


def connect_link(site: EmulatedService, actor: str) -> str:
    answer = site.api.post(
        "/v1/connect-links",
        json={"provider": "apple", "workspace_id": "ws_apple", "actor_id": actor},
    )
    assert answer.status_code == 201, answer.text
    url: str = answer.json()["url"]
    return url


def test_a_cross_site_form_post_completes_in_the_browser_that_started_it(site, chromium):
    context = chromium.new_context()  # type: ignore[attr-defined]
    try:
        page = context.new_page()
        callbacks: list[Any] = []
        page.on("request", lambda request: "/callback" in request.url and callbacks.append(request))
        open_connect_link(page, connect_link(site, "browser-user"))
        page.wait_for_selector("#title")
        assert page.inner_text("#title") == "Connected"
        posted, resumed = callbacks  # the provider's POST, then our GET with the handle
        assert posted.method == "POST" and resumed.method == "GET"
        assert "resume=" in resumed.url and "code=" not in resumed.url
        # The POST was cross-site: the Lax binding cookie did not go with it; the GET had it.
        assert "oauthvault_binding" not in posted.all_headers().get("cookie", "")
        assert "oauthvault_binding" in resumed.all_headers().get("cookie", "")
        assert "code=" not in page.url and "state=" not in page.url
    finally:
        context.close()
    listed = site.api.get("/v1/connections", params={"workspace_id": "ws_apple"})
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
            open_connect_link(page, connect_link(site, "stolen-user"))
            page.wait_for_timeout(500)
        assert resumes and "resume=" in resumes[0]
        other = second.new_page()
        other.goto(resumes[0])
        # Refused: as another browser's, or as used if the first browser got there first.
        assert other.inner_text("#title") in ("Open it in the same browser", "Sign-in expired")
        assert urlsplit(other.url).path.endswith("/result")  # no handle left in the address bar
    finally:
        first.close()
        second.close()
