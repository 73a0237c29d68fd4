"""A connect link of a provider that takes a typed credential (an API key, a username and
password, named fields) opens a form, in a real browser (Debian's Chromium through
Playwright): labelled fields, secrets masked, the pattern checked in the page and again on
the server, a help link per field, the link's missing parameters asked on the same form; a
credential the provider refuses (the loopback credential API emulator answers 401) is
refused on the page, never echoed and never stored; a good one is stored and the browser
ends on the host app's return URL like an OAuth flow. The POST handler's refusals (no link,
a used link, another method, a body too large) are checked without a browser."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from oauthvault import generate_key
from oauthvault.providers.credentials import load_credential_catalog
from oauthvault.service.credential_form import MAX_REFUSED
from oauthvault.service.html_pattern import html_pattern

from tests.helpers.credential_api import CredentialApiEmulator
from tests.helpers.host_app import HostApp
from tests.helpers.net import free_port
from tests.helpers.service_harness import ConnectEnvironment, running_environment

if TYPE_CHECKING:
    from playwright.sync_api import Page

WORKSPACE = "ws_form"
GOOD = "sk-" + "G" * 40
WRONG = "sk-" + "W" * 40
TWILIO = {"account_sid": "AC" + "0123456789abcdef" * 2, "auth_token": "twilio-secret-token-1"}
ZENDESK = {"email": "agent@example.com", "api_token": "zendesk-secret-token-1"}
DATADOG = {"api_key": "dd-secret-api-key-1", "application_key": "dd-secret-app-key-1"}
FORM_PROVIDERS = ("openai", "twilio", "zendesk-api-token", "datadog")


@pytest.fixture(scope="module")
def api() -> Iterator[CredentialApiEmulator]:
    emulator = CredentialApiEmulator(load_credential_catalog()).start()
    emulator.accept("openai", {"api_key": GOOD})
    emulator.accept("twilio", TWILIO)
    emulator.accept("zendesk-api-token", ZENDESK, {"subdomain": "acme"})
    emulator.accept("datadog", DATADOG, {"site": "datadoghq.eu"})
    yield emulator
    emulator.stop()


@pytest.fixture(scope="module")
def service(
    api: CredentialApiEmulator,
    host: HostApp,
    tmp_path_factory: pytest.TempPathFactory,
    postgres_url: str,
    _redis_checked: str,
) -> Iterator[ConnectEnvironment]:
    extra = "".join(
        f'[credentials.{name}]\napi_base_url = "{api.base_override(name)}"\n'
        for name in FORM_PROVIDERS
    )
    extra += f'[credentials.anthropic]\napi_base_url = "http://127.0.0.1:{free_port()}"\n'
    directory: Path = tmp_path_factory.mktemp("credential_form")
    with running_environment(
        directory,
        postgres_url,
        _redis_checked,
        generate_key(),
        auto_approve=True,
        extra_return_urls=[host.return_prefix],
        extra_config=extra,
    ) as environment:
        yield environment


def connect_link(service: ConnectEnvironment, provider: str, actor_id: str, **body: object) -> str:
    with service.api() as http:
        response = http.post(
            "/v1/connect-links",
            json={"provider": provider, "workspace_id": WORKSPACE, "actor_id": actor_id, **body},
        )
    assert response.status_code == 201, response.text
    url: str = response.json()["url"]
    assert f"/oauth/{provider}/authorize?link=" in url
    return url


def stored(service: ConnectEnvironment, provider: str, actor_id: str) -> httpx.Response:
    ids = {"provider": provider, "workspace_id": WORKSPACE, "actor_id": actor_id}
    with service.api() as http:
        return http.get("/v1/credentials", params=ids)


def returned(tab: Page, host: HostApp) -> dict[str, str]:
    tab.wait_for_url(lambda url: url.startswith(f"{host.return_url}?"))
    return {key: values[0] for key, values in parse_qs(urlsplit(tab.url).query).items()}


# --- in the browser ----------------------------------------------------------------------------


@pytest.mark.slow
def test_the_form_shows_labelled_fields_a_masked_secret_and_help_links(tab, service):
    response = tab.goto(connect_link(service, "twilio", "shown", workspace_name="Acme"))
    assert response is not None and response.status == 200
    policy = response.headers["content-security-policy"]
    assert "default-src 'none'" in policy and "form-action 'self'" in policy
    assert tab.title().startswith("Connect Twilio")
    assert tab.text_content("#workspace") == "Acme"

    sid, token = "#credential-account_sid", "#credential-auth_token"
    assert tab.text_content("label[for='credential-account_sid']") == "Account SID"
    assert tab.text_content("label[for='credential-auth_token']") == "Auth token"
    assert tab.get_attribute(sid, "type") == "text"
    assert tab.get_attribute(token, "type") == "password"
    assert tab.get_attribute(token, "autocomplete") == "off"
    assert tab.get_attribute(sid, "pattern") == "^AC[0-9a-fA-F]{32}$"
    assert tab.get_attribute(token, "pattern") is None
    assert tab.get_attribute(sid, "required") is not None
    assert tab.get_attribute("#help-credential-auth_token", "href") == "https://console.twilio.com/"
    assert tab.text_content("#help-credential-auth_token") == "Where do I find this?"
    # The form's link is a new one-time value, not the link in the address bar.
    posted = tab.get_attribute("input[name='link']", "value")
    assert posted and posted not in tab.url


@pytest.mark.slow
def test_a_value_breaking_the_pattern_is_refused_in_the_page_and_by_the_server(tab, service):
    actor = "patterned"
    tab.goto(connect_link(service, "openai", actor))
    field = "#credential-api_key"
    assert tab.get_attribute(field, "pattern") == r"^sk-\S{16,500}$"
    tab.fill(field, "not-a-key")
    form_url = tab.url
    tab.click("#continue")  # the browser's own validation keeps the form from posting
    assert tab.eval_on_selector(field, "el => el.validity.patternMismatch") is True
    assert tab.url == form_url

    # Without the page's check (an old browser, a script), the server checks it again.
    tab.eval_on_selector(field, "el => el.removeAttribute('pattern')")
    with tab.expect_navigation():
        tab.click("#continue")
    assert tab.get_attribute(field, "aria-invalid") == "true"
    assert "not a valid API key" in (tab.text_content("#error-credential-api_key") or "")
    assert "not-a-key" not in tab.content()
    assert stored(service, "openai", actor).status_code == 404


@pytest.mark.slow
def test_a_wrong_key_is_refused_on_the_page_then_a_good_one_is_stored(tab, service, host, caplog):
    caplog.set_level(logging.DEBUG)
    actor = "retrying"
    tab.goto(connect_link(service, "openai", actor, return_url=host.return_url))
    tab.fill("#credential-api_key", WRONG)
    with tab.expect_navigation():
        tab.click("#continue")
    assert "did not accept this API key" in (tab.text_content("#form-error") or "")
    assert WRONG not in tab.content()  # never sent back, not even to the same page
    assert tab.input_value("#credential-api_key") == ""
    assert stored(service, "openai", actor).status_code == 404

    tab.fill("#credential-api_key", GOOD)  # the same form, within the link's life
    tab.click("#continue")
    assert returned(tab, host) == {
        "oauthvault_status": "connected",
        "oauthvault_provider": "openai",
    }
    assert tab.text_content("#status") == "connected"
    read = stored(service, "openai", actor)
    assert read.status_code == 200, read.text
    assert read.json()["credentials"] == {"api_key": GOOD}
    assert "credential form for openai: refused by the provider" in caplog.text
    assert GOOD not in caplog.text and WRONG not in caplog.text


@pytest.mark.slow
def test_without_a_return_url_the_flow_ends_on_the_result_page(tab, service):
    tab.goto(connect_link(service, "openai", "no-return"))
    tab.fill("#credential-api_key", GOOD)
    with tab.expect_navigation():
        tab.click("#continue")
    assert tab.url.endswith("/oauth/openai/result")
    assert tab.text_content("#title") == "Connected"
    assert tab.text_content("#message") == "Your OpenAI account is connected."
    assert GOOD not in tab.content()


@pytest.mark.slow
def test_a_basic_provider_asks_for_its_missing_link_param_on_the_same_form(tab, service, host):
    actor = "zendesk-user"
    tab.goto(connect_link(service, "zendesk-api-token", actor, return_url=host.return_url))
    assert tab.text_content("label[for='param-subdomain']") == "Zendesk subdomain"
    assert tab.get_attribute("#param-subdomain", "type") == "text"
    assert tab.get_attribute("#credential-email", "type") == "text"
    assert tab.get_attribute("#credential-api_token", "type") == "password"
    tab.fill("#param-subdomain", "Not A Subdomain")
    tab.fill("#credential-email", ZENDESK["email"])
    tab.fill("#credential-api_token", ZENDESK["api_token"])
    tab.click("#continue")
    assert tab.eval_on_selector("#param-subdomain", "el => el.validity.patternMismatch")

    tab.fill("#param-subdomain", "acme")
    tab.click("#continue")
    assert returned(tab, host)["oauthvault_status"] == "connected"
    read = stored(service, "zendesk-api-token", actor).json()
    assert read["credentials"] == ZENDESK
    assert read["params"] == {"subdomain": "acme"}


@pytest.mark.slow
def test_a_basic_provider_refused_keeps_the_plain_field_and_drops_the_secret(tab, service, host):
    actor = "twilio-user"
    tab.goto(connect_link(service, "twilio", actor, return_url=host.return_url))
    tab.fill("#credential-account_sid", TWILIO["account_sid"])
    tab.fill("#credential-auth_token", "a-wrong-twilio-token")
    with tab.expect_navigation():
        tab.click("#continue")
    assert tab.text_content("#form-error")
    assert tab.input_value("#credential-account_sid") == TWILIO["account_sid"]
    assert tab.input_value("#credential-auth_token") == ""
    assert "a-wrong-twilio-token" not in tab.content()
    assert stored(service, "twilio", actor).status_code == 404

    tab.fill("#credential-auth_token", TWILIO["auth_token"])
    tab.click("#continue")
    assert returned(tab, host)["oauthvault_status"] == "connected"
    assert stored(service, "twilio", actor).json()["credentials"] == TWILIO


@pytest.mark.slow
def test_a_fields_provider_with_its_param_in_the_link(tab, service, host):
    actor = "datadog-user"
    url = connect_link(
        service, "datadog", actor, return_url=host.return_url, params={"site": "datadoghq.eu"}
    )
    tab.goto(url)
    assert tab.locator("#param-site").count() == 0  # given by the link: not asked
    assert tab.get_attribute("#credential-api_key", "type") == "password"
    assert tab.get_attribute("#credential-application_key", "type") == "password"
    assert tab.get_attribute("#help-credential-application_key", "href") == (
        "https://app.datadoghq.com/organization-settings/application-keys"
    )
    tab.fill("#credential-api_key", DATADOG["api_key"])
    tab.fill("#credential-application_key", DATADOG["application_key"])
    tab.click("#continue")
    assert returned(tab, host)["oauthvault_status"] == "connected"
    read = stored(service, "datadog", actor).json()
    assert read["credentials"] == DATADOG and read["params"] == {"site": "datadoghq.eu"}


@pytest.mark.slow
def test_every_pattern_the_pages_emit_compiles_in_chromium_and_agrees(chromium):
    emitted = {}
    for spec in load_credential_catalog().values():
        declared = [(f.pattern, f.example) for f in spec.fields]
        declared += [(p.pattern, p.example) for p in spec.connection_params]
        for pattern, example in declared:
            translated = html_pattern(pattern)
            if translated is not None:
                emitted[translated] = (pattern, example)
    assert len(emitted) >= 15
    context = chromium.new_context()
    try:
        page = context.new_page()
        for translated, (pattern, example) in emitted.items():
            samples = [s for s in (example, "", "x", "sk-" + "a" * 20, "acme") if s is not None]
            verdicts = page.evaluate(
                "([p, samples]) => samples.map(s => new RegExp(`^(?:${p})$`, 'v').test(s))",
                [translated, samples],
            )
            expected = [re.fullmatch(pattern, sample) is not None for sample in samples]
            assert verdicts == expected, (pattern, translated)
    finally:
        context.close()


# --- without a browser -------------------------------------------------------------------------


def open_form(http: httpx.Client, url: str) -> tuple[str, str]:
    """Open a connect link as a browser would: the form's action and one-time link."""
    page = http.get(url)
    assert page.status_code == 200, page.text
    action = re.search(r'<form id="credentials" method="post" action="([^"]+)"', page.text)
    token = re.search(r'<input type="hidden" name="link" value="([^"]+)"', page.text)
    assert action is not None and token is not None
    return action.group(1), token.group(1)


def test_the_post_handler_refuses_what_it_must(service):
    url = connect_link(service, "openai", "refusals")
    with httpx.Client(timeout=10) as http:
        action, token = open_form(http, url)
        no_link = http.post(action, data={"credentials.api_key": GOOD})
        assert no_link.status_code == 400 and 'id="code">link_expired' in no_link.text
        other = httpx.post(action, data={"link": token, "credentials.api_key": GOOD})
        assert other.status_code == 403  # no binding cookie: not this browser's form
        put = http.put(action, data={"link": token})
        assert put.status_code == 405
        too_large = http.post(
            action,
            content=b"link=" + token.encode() + b"&x=" + b"a" * 70_000,
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        assert too_large.status_code == 413
        as_json = http.post(action, json={"link": token})
        assert as_json.status_code == 415
        assert stored(service, "openai", "refusals").status_code == 404

        # None of that used the form's link up: it still stores, once.
        done = http.post(action, data={"link": token, "credentials.api_key": GOOD})
        assert done.status_code == 303, done.text
        assert done.headers["location"].endswith("/oauth/openai/result")
        assert GOOD not in done.headers["location"]
        assert stored(service, "openai", "refusals").status_code == 200
        again = http.post(action, data={"link": token, "credentials.api_key": GOOD})
        assert again.status_code == 400 and 'id="code">link_expired' in again.text
        reopened = http.get(url)
        assert reopened.status_code == 400 and 'id="code">link_expired' in reopened.text


def test_a_server_side_refusal_never_echoes_a_secret(service):
    with httpx.Client(timeout=10) as http:
        action, token = open_form(http, connect_link(service, "twilio", "echo"))
        bad_sid, secret = "AC-not-a-sid", "twilio-secret-never-shown"
        page = http.post(
            action,
            data={
                "link": token,
                "credentials.account_sid": bad_sid,
                "credentials.auth_token": secret,
            },
        )
        assert page.status_code == 422
        assert 'id="error-credential-account_sid"' in page.text
        assert f'value="{bad_sid}"' in page.text  # a plain field is kept to correct it
        assert secret not in page.text


def test_the_link_gives_up_after_too_many_refused_credentials(service, host):
    actor = "guessing"
    with httpx.Client(timeout=10) as http:
        action, token = open_form(
            http, connect_link(service, "openai", actor, return_url=host.return_url)
        )
        for attempt in range(1, MAX_REFUSED + 1):
            answer = http.post(
                action, data={"link": token, "credentials.api_key": f"sk-{attempt:020d}"}
            )
            if attempt < MAX_REFUSED:
                assert answer.status_code == 400 and 'id="form-error"' in answer.text
                token = re.search(r'name="link" value="([^"]+)"', answer.text).group(1)
        assert answer.status_code == 303
        query = parse_qs(urlsplit(answer.headers["location"]).query)
        assert query["oauthvault_status"] == ["error"]
        assert query["oauthvault_error"] == ["invalid_credentials"]
        again = http.post(action, data={"link": token, "credentials.api_key": GOOD})
        assert 'id="code">link_expired' in again.text
    assert stored(service, "openai", actor).status_code == 404


def test_a_provider_that_cannot_answer_ends_the_flow_with_its_code(service, host):
    actor = "unreachable"  # anthropic's API is configured on a port nobody listens on
    with httpx.Client(timeout=10) as http:
        action, token = open_form(
            http, connect_link(service, "anthropic", actor, return_url=host.return_url)
        )
        key = "sk-ant-" + "U" * 30
        answer = http.post(action, data={"link": token, "credentials.api_key": key})
    assert answer.status_code == 303
    assert key not in answer.headers["location"]
    query = parse_qs(urlsplit(answer.headers["location"]).query)
    assert query["oauthvault_error"] == ["temporarily_unavailable"]
    assert stored(service, "anthropic", actor).status_code == 404


def test_a_host_bound_link_opens_the_form_from_the_host_page_only(service, host):
    with service.api() as http:
        made = http.post(
            "/v1/connect-links",
            json={
                "provider": "openai",
                "workspace_id": WORKSPACE,
                "actor_id": "bound",
                "return_url": host.return_url,
                "binding": "host_page",
            },
        )
    assert made.status_code == 201, made.text
    url, secret = made.json()["url"], made.json()["browser_secret"]
    with httpx.Client(timeout=10) as http:
        assert 'id="code">link_expired' in http.get(url).text  # opening it alone does nothing
        page = http.post(url, data={"browser_secret": secret}, headers={"Origin": host.url})
        assert page.status_code == 200 and 'id="credentials"' in page.text
        token = re.search(r'name="link" value="([^"]+)"', page.text)
        assert token is not None
        done = http.post(url, data={"link": token.group(1), "credentials.api_key": GOOD})
    assert done.status_code == 303
    assert done.headers["location"].startswith(f"{host.return_url}?oauthvault_status=connected")
    assert stored(service, "openai", "bound").status_code == 200


def test_connect_links_of_credential_providers_are_checked_when_made(service):
    ids = {"workspace_id": WORKSPACE, "actor_id": "made"}
    with service.api() as http:
        scoped = http.post(
            "/v1/connect-links", json={**ids, "provider": "openai", "scopes": ["read"]}
        )
        assert scoped.status_code == 422 and scoped.json()["argument"] == "scopes"
        bad_param = http.post(
            "/v1/connect-links",
            json={**ids, "provider": "zendesk-api-token", "params": {"subdomain": "a b"}},
        )
        assert bad_param.status_code == 422
        assert bad_param.json()["argument"] == "params.subdomain"
        unknown = http.post("/v1/connect-links", json={**ids, "provider": "nobody"})
        assert unknown.status_code == 404


def test_html_patterns_translate_only_what_means_the_same():
    assert html_pattern(r"^[a-z0-9][a-z0-9-]{0,62}$") == r"^[a-z0-9][a-z0-9\-]{0,62}$"
    assert html_pattern(r"^sk-\S{16,500}$") == r"^sk-\S{16,500}$"
    assert html_pattern(r"(a|b)+?") == r"(a|b)+?"
    for untranslatable in (r"(?i)abc", r"a{,3}", r"(?P<x>a)", r"a\b", r"a++", r"[]a]", "(", None):
        assert html_pattern(untranslatable) is None, untranslatable
