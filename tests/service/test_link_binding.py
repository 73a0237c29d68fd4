"""Issue 26 (2, 24): a connect link binds the person, not just whoever opens it.

Opening a link shows a confirmation page; only its POST (carrying a one-time value only
that browser can post) goes on to the provider. A host-bound link works only when the host
app's own page POSTs its browser secret. In Debian's Chromium with Playwright, against the
service's local OpenID provider, with the host app (``host``) on an allowed origin.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

if TYPE_CHECKING:
    from playwright.sync_api import Page

pytestmark = [pytest.mark.slow, pytest.mark.env_options(host_app=True)]

WORKSPACE = "ws_binding"


def stored(pg, actor_id: str) -> int:
    row = pg.execute(
        "SELECT count(*) FROM oauth_tokens WHERE workspace_id = %s AND actor_id = %s",
        (WORKSPACE, actor_id),
    ).fetchone()
    return int(row[0])


def create_link(env, actor_id: str, **body) -> dict:
    with env.api() as api:
        answer = api.post(
            "/v1/connect-links",
            json={"provider": "local", "workspace_id": WORKSPACE, "actor_id": actor_id, **body},
        )
    assert answer.status_code == 201, answer.text
    return answer.json()


def provider_requests(tab: Page, env) -> list[str]:
    seen: list[str] = []
    tab.on("request", lambda r: r.url.startswith(env.provider.issuer) and seen.append(r.url))
    return seen


def test_opening_a_link_shows_a_confirmation_page_and_only_its_post_goes_on(tab, env, host, pg):
    made = create_link(env, "confirm-me", return_url=host.return_url, workspace_name="Acme Sales")
    at_provider = provider_requests(tab, env)
    response = tab.goto(made["url"])
    assert response is not None and response.status == 200
    tab.wait_for_selector("#continue")
    assert at_provider == [] and urlsplit(tab.url).path == "/oauth/local/authorize"
    assert tab.inner_text("#title") == "Connect local"
    assert "Acme Sales" in tab.inner_text("#workspace")
    assert tab.inner_text("#continue") == "Continue to local"
    assert tab.locator("form[method=post]").count() == 1
    assert stored(pg, "confirm-me") == 0
    tab.screenshot(path="/tmp/oauthvault-pages/connect-confirm.png", full_page=True)  # noqa: S108
    tab.click("#continue")
    tab.wait_for_url(lambda url: url.startswith(f"{host.return_url}?"))
    query = parse_qs(urlsplit(tab.url).query)
    assert query["oauthvault_status"] == ["connected"]
    assert at_provider and stored(pg, "confirm-me") == 1


def test_a_forged_post_without_the_pages_token_is_refused_and_uses_nothing(tab, env, host, pg):
    made = create_link(env, "forged", return_url=host.return_url)
    token = parse_qs(urlsplit(made["url"]).query)["link"][0]
    action = f"{env.base_url}/oauth/local/authorize"
    with httpx.Client(timeout=10) as attacker:
        # Cross-site, the binding cookie is not sent: refused before anything is looked up.
        no_cookie = attacker.post(action, data={"link": token})
        assert no_cookie.status_code == 403 and "location" not in no_cookie.headers
        # With a cookie of its own, the link itself (not the page's token) is still refused.
        attacker.cookies.set("oauthvault_binding", "attacker")
        for forged in ({"link": token}, {"link": "made-up"}, {"shop": "x"}):
            refused = attacker.post(action, data=forged)
            assert refused.status_code == 400, forged
            assert "location" not in refused.headers
    # The page's token works only in the browser the page was shown in.
    tab.goto(made["url"])
    page_token = tab.get_attribute("input[name=link]", "value")
    with httpx.Client(timeout=10, cookies={"oauthvault_binding": "attacker"}) as other:
        assert other.post(action, data={"link": page_token}).status_code == 400
    tab.click("#continue")  # the real browser was not disturbed by any of it
    tab.wait_for_url(lambda url: url.startswith(f"{host.return_url}?"))
    assert "oauthvault_status=connected" in tab.url
    assert stored(pg, "forged") == 1


def test_a_host_bound_link_does_not_work_without_its_secret(chromium, env, host, pg):
    made = create_link(env, "mallory", return_url=host.return_url, binding="host_page")
    secret = made["browser_secret"]
    assert secret and secret not in made["url"]
    victim = chromium.new_context()
    try:
        tab = victim.new_page()
        at_provider = provider_requests(tab, env)
        response = tab.goto(made["url"])  # the link alone, as mallory would send it
        assert response is not None and response.status == 400
        assert tab.inner_text("#title") == "Link expired"
        # Mallory's own page, posting the secret from another origin, is refused too.
        tab.set_content(
            f'<form method="post" action="{made["url"]}">'
            f'<input type="hidden" name="browser_secret" value="{secret}">'
            '<button id="go">go</button></form>'
        )
        tab.click("#go")
        tab.wait_for_selector("#title")
        assert tab.inner_text("#title") == "Open it in the same browser"
        assert at_provider == []
    finally:
        victim.close()
    assert stored(pg, "mallory") == 0
    with httpx.Client(timeout=10) as stranger:  # a wrong secret from the host's origin
        wrong = stranger.post(
            made["url"], data={"browser_secret": "wrong"}, headers={"Origin": host.url}
        )
        assert wrong.status_code == 400 and "location" not in wrong.headers


def test_a_host_bound_link_posted_by_the_host_page_completes(tab, env, host, pg):
    made = create_link(env, "bound-ok", return_url=host.return_url, binding="host_page")
    path = "/settings/integrations/bound-ok"
    host.bound_pages[path] = (made["url"], made["browser_secret"])
    tab.goto(f"{host.url}{path}")
    tab.click("#connect")  # the host page is the confirmation: straight to the provider
    tab.wait_for_url(lambda url: url.startswith(f"{host.return_url}?"))
    assert "oauthvault_status=connected" in tab.url
    assert stored(pg, "bound-ok") == 1
    # Once: the same page again finds nothing.
    tab.goto(f"{host.url}{path}")
    tab.click("#connect")
    tab.wait_for_selector("#title")
    assert tab.inner_text("#title") == "Link expired"
    assert re.search(r"/oauth/local/authorize", tab.url)
