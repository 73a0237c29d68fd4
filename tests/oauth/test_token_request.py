"""The catalog-shaped token exchange, driven by hand: requests it builds, answers it reads."""

from __future__ import annotations

import json

import pytest

from oauthvault.oauth.token_request import HttpRequest, HttpResponse, exchange
from oauthvault.providers import load_catalog

SECRET = "client-secret-xyz"


def drive(flow, *answers: HttpResponse) -> tuple[list[HttpRequest], object]:
    """Run an exchange with canned answers; returns the requests it made and its result."""
    requests = [next(flow)]
    try:
        for answer in answers:
            requests.append(flow.send(answer))
    except StopIteration as stop:
        return requests, stop.value
    raise AssertionError("the exchange asked for more requests than answers were given")


def ok(body: object, status: int = 200) -> HttpResponse:
    return HttpResponse(status, json.dumps(body).encode(), "application/json")


def grant(name: str, kind: str, fields: dict[str, str], answer: HttpResponse, **params: str):
    """One exchange of catalog provider ``name`` (placeholders filled from ``params``)."""
    spec = load_catalog()[name]
    if spec.placeholders:
        spec = spec.with_placeholders(**params)
    flow = exchange(
        spec,
        client_id="cid",
        client_secret=SECRET,
        grant=kind,
        fields=fields,
        rotating=spec.refresh_tokens == "rotating",
    )
    return drive(flow, answer)


def refresh(name: str, answer: HttpResponse, **params: str):
    return grant(name, "refresh_token", {"refresh_token": "rt-1"}, answer, **params)


def code_exchange(name: str, answer: HttpResponse, **params: str):
    fields = {"code": "c", "redirect_uri": "https://app.example/cb"}
    return grant(name, "authorization_code", fields, answer, **params)


def test_notion_posts_json_with_basic_auth():
    requests, result = refresh("notion", ok({"access_token": "a", "workspace_id": "0" * 32}))
    assert requests[0].json_body is not None and requests[0].form is None
    assert requests[0].json_body["grant_type"] == "refresh_token"
    assert "client_secret" not in requests[0].json_body
    assert requests[0].basic_auth == ("cid", SECRET)
    assert result.outcome == "ok" and result.params == {"workspace_id": "0" * 32}


def test_zendesk_and_shopify_send_their_extra_parameters_to_the_connections_host():
    requests, _ = refresh(
        "zendesk", ok({"access_token": "a", "expires_in": 1800}), subdomain="acme"
    )
    assert requests[0].url == "https://acme.zendesk.com/oauth/tokens"
    assert requests[0].form["expires_in"] == "1800"
    spec = load_catalog()["shopify"].with_placeholders(shop="acme.myshopify.com")
    code = exchange(
        spec,
        client_id="cid",
        client_secret=SECRET,
        grant="authorization_code",
        fields={"code": "c", "redirect_uri": "https://app.example/cb"},
    )
    first = next(code)
    assert first.url == "https://acme.myshopify.com/admin/oauth/access_token"
    assert first.form["expiring"] == "1" and first.form["client_secret"] == SECRET
    # Shopify's refresh sends no `expiring` (refresh_params = {} overrides token_params).
    requests, _ = refresh("shopify", ok({"access_token": "a"}), shop="acme.myshopify.com")
    assert "expiring" not in requests[0].form


def test_a_slack_user_token_install_reads_the_nested_token():
    answer = ok(
        {
            "ok": True,
            "team": {"id": "T123"},
            "authed_user": {
                "id": "U1",
                "access_token": "xoxp-1",
                "refresh_token": "r",
                "expires_in": 43200,
            },
        }
    )
    _, result = refresh("slack", answer)
    assert result.outcome == "ok"
    assert result.token["access_token"] == "xoxp-1"
    assert result.token["expires_in"] == 43200
    assert result.params == {"team_id": "T123", "authed_user_id": "U1"}


@pytest.mark.parametrize(
    ("name", "answer", "error"),
    [
        ("slack", ok({"ok": False, "error": "invalid_refresh_token"}), "invalid_refresh_token"),
        ("hubspot", ok({"status": "BAD_REFRESH_TOKEN", "message": "x"}, 400), "BAD_REFRESH_TOKEN"),
        (
            "twitch",
            ok({"error": "Bad Request", "status": 400, "message": "Invalid refresh token"}, 400),
            "Invalid refresh token",
        ),
        ("google", ok({"error": "invalid_grant"}, 400), "invalid_grant"),
    ],
)
def test_documented_dead_grant_answers_mean_reauthorization(name, answer, error):
    _, result = refresh(name, answer)
    assert (result.outcome, result.error) == ("reauth", error)


def test_an_unknown_error_body_stays_transient_and_records_no_other_field():
    _, result = refresh("google", ok({"weird": "x", "access_token_hint": "SECRET123"}, 400))
    assert result.outcome == "transient" and result.error == "http_400"
    assert "SECRET123" not in (result.description or "")
    _, result = refresh("slack", ok({"ok": False, "error": "ratelimited"}))
    assert result.outcome == "transient" and result.error == "ratelimited"


def test_salesforce_reads_the_expiry_by_introspection_then_falls_back():
    spec = load_catalog()["salesforce"].with_placeholders(hostname="login.salesforce.com")
    answer = ok(
        {
            "access_token": "a",
            "refresh_token": "r",
            "instance_url": "https://acme.my.salesforce.com",
            "id": "https://login.salesforce.com/id/00D/005",
        }
    )
    flow = exchange(
        spec,
        client_id="cid",
        client_secret=SECRET,
        grant="refresh_token",
        fields={"refresh_token": "r"},
        clock=lambda: 1_000,
    )
    requests, result = drive(flow, answer, ok({"active": True, "exp": 8_200}))
    assert requests[1].url == "https://login.salesforce.com/services/oauth2/introspect"
    assert requests[1].form["token"] == "a"
    assert result.token["expires_in"] == 7_200
    assert result.params["instance_url"] == "https://acme.my.salesforce.com"
    flow = exchange(
        spec,
        client_id="cid",
        client_secret=SECRET,
        grant="refresh_token",
        fields={"refresh_token": "r"},
    )
    _, result = drive(flow, answer, HttpResponse(failure="ConnectError"))
    assert result.token["expires_in"] == spec.access_token_lifetime == 900


def test_no_lifetime_is_guessed_without_a_refresh_token():
    _, result = code_exchange("shopify", ok({"access_token": "a"}), shop="acme.myshopify.com")
    assert result.token["expires_in"] is None


def test_a_lost_answer_at_a_rotating_provider_is_not_safe_to_retry():
    _, result = refresh("gitlab", HttpResponse(failure="ReadTimeout", reached=True))
    assert result.outcome == "transient" and result.retry_safe is False
    _, result = refresh("gitlab", HttpResponse(failure="ConnectError", reached=False))
    assert result.retry_safe is True


def test_requests_keep_secrets_out_of_repr():
    requests, _ = refresh("google", ok({"access_token": "a"}))
    assert SECRET not in repr(requests[0]) and "rt-1" not in repr(requests[0])


def test_a_slack_bot_and_user_install_refreshes_both_token_sets():
    from oauthvault.oauth.refresh_grant import secondary_refresh_token, with_secondary
    from oauthvault.oauth.token_request import GrantResult

    slack = load_catalog()["slack"]
    kept = {"access_token": "xoxb", "authed_user": {"id": "U1", "refresh_token": "xoxe-user"}}
    assert secondary_refresh_token(slack, kept) == "xoxe-user"
    # A user-token-only install: the nested set is the main one, nothing second to refresh.
    assert secondary_refresh_token(slack, {"authed_user": {"refresh_token": "x"}}) is None
    assert secondary_refresh_token(load_catalog()["google"], kept) is None
    main = GrantResult("ok", token={"access_token": "xoxb-2"}, response={"access_token": "xoxb-2"})
    merged = with_secondary(
        main, "authed_user", kept, {"access_token": "xoxp-2", "refresh_token": "xoxe-user-2"}
    )
    assert merged.response["authed_user"] == {
        "id": "U1",
        "access_token": "xoxp-2",
        "refresh_token": "xoxe-user-2",
    }
    assert merged.token == main.token


@pytest.mark.parametrize("value", [0, -1, "0", "-1"])
def test_a_zero_or_negative_lifetime_means_no_expiry(value):
    _, result = code_exchange("google", ok({"access_token": "a", "expires_in": value}))
    assert result.outcome == "ok" and result.token["expires_in"] is None


def test_a_refresh_answer_without_a_required_value_keeps_its_tokens():
    # Pipedrive's api_domain is required at connect; a refresh answer may leave it out,
    # and its (rotated) tokens must not be thrown away for that.
    _, result = refresh("pipedrive", ok({"access_token": "a2", "refresh_token": "r2"}))
    assert result.outcome == "ok" and result.token["refresh_token"] == "r2"
    assert "api_domain" not in result.params


def test_a_static_refresh_without_expires_in_gets_the_catalog_lifetime():
    zoho = load_catalog()["zoho"]
    _, result = refresh("zoho", ok({"access_token": "a2"}), domain="zoho.com")
    assert result.token["expires_in"] == zoho.access_token_lifetime


@pytest.mark.parametrize("value", ["--5", "²", "1e9", 10**12, float("nan")])
def test_malformed_lifetimes_are_ignored(value):
    _, result = code_exchange("google", ok({"access_token": "a", "expires_in": value}))
    assert result.outcome == "ok" and result.token["expires_in"] is None


def test_introspection_with_a_non_finite_exp_falls_back():
    spec = load_catalog()["salesforce"].with_placeholders(hostname="login.salesforce.com")
    answer = ok(
        {
            "access_token": "a",
            "refresh_token": "r",
            "instance_url": "https://acme.my.salesforce.com",
        }
    )
    flow = exchange(
        spec,
        client_id="cid",
        client_secret=SECRET,
        grant="refresh_token",
        fields={"refresh_token": "r"},
    )
    bad = HttpResponse(200, b'{"active": true, "exp": Infinity}', "application/json")
    _, result = drive(flow, answer, bad)
    assert result.token["expires_in"] == spec.access_token_lifetime


def test_httpx_request_logs_never_show_a_query(caplog):
    import logging

    import httpx

    from oauthvault.oauth.token_request import install_httpx_log_redaction

    install_httpx_log_redaction()  # the token request drivers call it before sending

    with caplog.at_level(logging.INFO, logger="httpx"):
        logging.getLogger("httpx").info(
            'HTTP Request: %s %s "%s %d %s"',
            "POST",
            httpx.URL("https://accounts.zoho.com/oauth/v2/token/revoke?token=REFRESH-SECRET"),
            "HTTP/1.1",
            200,
            "OK",
        )
    assert "REFRESH-SECRET" not in caplog.text and "token/revoke?[redacted]" in caplog.text


def test_installing_the_httpx_log_redaction_twice_adds_one_filter(monkeypatch):
    import logging

    from oauthvault.oauth.token_request import install_httpx_log_redaction

    monkeypatch.setattr(logging.getLogger("httpx"), "filters", [])
    install_httpx_log_redaction()
    install_httpx_log_redaction()
    assert len(logging.getLogger("httpx").filters) == 1


def test_importing_oauthvault_leaves_logging_alone():
    """No module of oauthvault adds a filter or handler to any logger when imported (the
    httpx redaction comes with the first token request); run in a fresh interpreter."""
    import subprocess
    import sys

    code = """
import importlib, logging, pkgutil, oauthvault
names = [
    module.name
    for module in pkgutil.walk_packages(oauthvault.__path__, "oauthvault.")
    if ".migrations." not in module.name and not module.name.endswith("__main__")
]
for name in names:
    importlib.import_module(name)
loggers = [logging.getLogger(), logging.getLogger("httpx")] + [
    logger
    for name, logger in logging.Logger.manager.loggerDict.items()
    if name.startswith("oauthvault") and isinstance(logger, logging.Logger)
]
print(len(names), sum(len(each.filters) + len(each.handlers) for each in loggers))
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    imported, installed = map(int, done.stdout.split())
    assert imported > 50  # every module, the service's too
    assert installed == 0
