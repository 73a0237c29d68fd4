"""Minted tokens against loopback emulators over real HTTP: GitHub App installation tokens,
Google service-account tokens and two-step exchanges (Tableau, Looker), each driven with
``run_sync`` and ``run_async``; the settings' parse errors; and no secret in any error,
repr or log line."""

from __future__ import annotations

import asyncio
import json
import logging
import tomllib
from collections.abc import Callable, Generator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from joserfc import jwt
from joserfc.jwk import RSAKey

from oauthvault.errors import ConfigError
from oauthvault.oauth.app_tokens import (
    github_app_jwt,
    github_installation_token,
    github_revoke_installation_token,
    github_user_has_installation,
    service_account_jwt,
    service_account_token,
    two_step_token,
)
from oauthvault.oauth.token_request import (
    GrantResult,
    HttpRequest,
    HttpResponse,
    run_async,
    run_sync,
)
from oauthvault.providers.minting import (
    GOOGLE_TOKEN_URIS,
    GitHubApp,
    ServiceAccount,
    TwoStepRequest,
    parse_github_app,
    parse_service_account,
    parse_service_account_app,
    parse_two_step,
)

from tests.helpers.app_emulators import GitHubEmulator, GoogleTokenEmulator, TwoStepEmulator
from tests.helpers.net import free_port

Flow = Generator[HttpRequest, HttpResponse, Any]

# The catalog entries these exchanges serve (the credentials catalog's shape); the tests
# read their token_request tables, so what the catalog will say is what was run.
CATALOG = Path(__file__).with_name("minting_catalog.toml")
ENTRIES: dict[str, Any] = tomllib.loads(CATALOG.read_text())["providers"]


def pkcs1(key: rsa.RSAPrivateKey) -> str:
    """The PEM GitHub hands out (``BEGIN RSA PRIVATE KEY``)."""
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    ).decode()


def pkcs8(key: rsa.RSAPrivateKey) -> str:
    """The PEM a Google key file holds (``BEGIN PRIVATE KEY``)."""
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


def now() -> datetime:
    return datetime.now(UTC)


def finished(flow: Flow, answer: HttpResponse) -> tuple[HttpRequest, Any]:
    """The request ``flow`` sends, and its result when ``answer`` comes back."""
    request = next(flow)
    with pytest.raises(StopIteration) as stop:
        flow.send(answer)
    return request, stop.value.value


def answer(status: int, body: object) -> HttpResponse:
    return HttpResponse(status, json.dumps(body).encode(), "application/json")


def leaks(secret: str, *things: object) -> bool:
    return any(secret in (thing if isinstance(thing, str) else repr(thing)) for thing in things)


@pytest.fixture(scope="module")
def keys() -> list[rsa.RSAPrivateKey]:
    return [rsa.generate_private_key(public_exponent=65537, key_size=2048) for _ in range(2)]


@pytest.fixture(scope="module")
def github() -> Iterator[GitHubEmulator]:
    with GitHubEmulator() as emulator:
        yield emulator


@pytest.fixture(scope="module")
def google() -> Iterator[GoogleTokenEmulator]:
    with GoogleTokenEmulator() as emulator:
        yield emulator


@pytest.fixture(scope="module")
def two_step() -> Iterator[TwoStepEmulator]:
    with TwoStepEmulator() as emulator:
        yield emulator


@pytest.fixture(params=["sync", "async"])
def drive(request: pytest.FixtureRequest) -> Callable[[Flow], Any]:
    """Runs an exchange with a blocking or an asyncio httpx client."""

    def sync(flow: Flow) -> Any:
        with httpx.Client(timeout=10) as http:
            return run_sync(flow, http)

    def asynchronous(flow: Flow) -> Any:
        async def go() -> Any:
            async with httpx.AsyncClient(timeout=10) as http:
                return await run_async(flow, http)

        return asyncio.run(go())

    return sync if request.param == "sync" else asynchronous


# --- GitHub Apps -----------------------------------------------------------------------------


def github_app(
    emulator: GitHubEmulator, key: rsa.RSAPrivateKey, app_id: str = "123456"
) -> GitHubApp:
    table = {
        "app_id": app_id,
        "private_key": pkcs1(key),
        "api_base_url": emulator.base_url + "/",
        "app_slug": "oauthvault-test",
    }
    return parse_github_app(table, "apps.github")


def test_github_app_jwt_has_githubs_claims(keys: list[rsa.RSAPrivateKey]) -> None:
    app = GitHubApp("123456", pkcs1(keys[0]))
    at = datetime(2030, 6, 1, 12, 0, tzinfo=UTC)
    token = jwt.decode(github_app_jwt(app, at), RSAKey.import_key(keys[0].public_key()))
    issued = int(at.timestamp())
    assert token.header == {"alg": "RS256", "typ": "JWT"}
    assert token.claims == {"iat": issued - 60, "exp": issued + 540, "iss": "123456"}


@pytest.mark.parametrize("app_id", ["123456", "Iv23liTestClient01"])
def test_github_installation_token_is_minted_works_and_is_revoked(
    drive: Callable[[Flow], Any],
    github: GitHubEmulator,
    keys: list[rsa.RSAPrivateKey],
    app_id: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    github.register_app(app_id, keys[0])
    installation = f"{len(github.installations) + 100}"
    github.install(installation, app_id)
    app = github_app(github, keys[0], app_id)

    result: GrantResult = drive(github_installation_token(app, installation, clock=now))

    assert result.outcome == "ok", result
    assert result.token is not None
    token = result.token["access_token"]
    assert token.startswith("ghs_") and result.token["refresh_token"] is None
    assert 3590 <= result.token["expires_in"] <= 3600
    assert result.response is not None and result.response["permissions"]["contents"] == "read"
    assert github.mints[installation] == 1
    assert github.headers["accept"] == "application/vnd.github+json"
    assert github.headers["x-github-api-version"] == "2022-11-28"
    bearer = {"Authorization": f"Bearer {token}"}
    repositories = httpx.get(f"{github.base_url}/installation/repositories", headers=bearer)
    assert repositories.status_code == 200
    assert repositories.json()["repositories"] == [{"name": "octo-repo"}]

    assert drive(github_revoke_installation_token(app, token)) is True
    gone = httpx.get(f"{github.base_url}/installation/repositories", headers=bearer)
    assert gone.status_code == 401
    assert drive(github_revoke_installation_token(app, token)) is False
    assert not leaks(token, repr(result), caplog.text)
    assert not leaks(app.private_key, repr(app), caplog.text)


def test_github_wrong_key_is_a_configuration_error(
    drive: Callable[[Flow], Any], github: GitHubEmulator, keys: list[rsa.RSAPrivateKey]
) -> None:
    github.register_app("222", keys[0])
    github.install("2220", "222")
    app = github_app(github, keys[1], "222")  # signed with another key

    result = drive(github_installation_token(app, "2220", clock=now))

    assert (result.outcome, result.error) == ("config", "app_jwt_refused")
    assert github.mints["2220"] == 0
    jwt_sent = github_app_jwt(app, now())
    assert not leaks(jwt_sent[:40], result.description or "", repr(result))


def test_github_removed_or_suspended_installation_needs_reauthorization(
    drive: Callable[[Flow], Any], github: GitHubEmulator, keys: list[rsa.RSAPrivateKey]
) -> None:
    github.register_app("333", keys[0])
    github.install("3330", "333")
    github.install("3331", "333", suspended=True)
    github.install("3332", "444")  # another app's installation
    app = github_app(github, keys[0], "333")
    assert drive(github_installation_token(app, "3330", clock=now)).outcome == "ok"
    github.uninstall("3330")

    removed = drive(github_installation_token(app, "3330", clock=now))
    suspended = drive(github_installation_token(app, "3331", clock=now))
    others = drive(github_installation_token(app, "3332", clock=now))

    assert (removed.outcome, removed.error) == ("reauth", "installation_not_found")
    assert (suspended.outcome, suspended.error) == ("reauth", "installation_suspended")
    assert suspended.description == "message=This installation has been suspended"
    assert (others.outcome, others.error) == ("reauth", "installation_not_found")


def test_github_stale_clock_jwt_is_refused(
    drive: Callable[[Flow], Any], github: GitHubEmulator, keys: list[rsa.RSAPrivateKey]
) -> None:
    github.register_app("555", keys[0])
    github.install("5550", "555")
    app = github_app(github, keys[0], "555")

    result = drive(github_installation_token(app, "5550", clock=lambda: now() - timedelta(hours=1)))

    assert (result.outcome, result.error) == ("config", "app_jwt_refused")


def test_github_answers_and_failures_map_to_outcomes(keys: list[rsa.RSAPrivateKey]) -> None:
    app = GitHubApp("1", pkcs1(keys[0]), "https://ghe.example.com/api/v3")
    cases = [
        (answer(503, {"message": "Service unavailable"}), "transient", "http_503"),
        (answer(429, {"message": "slow down"}), "transient", "http_429"),
        (
            answer(403, {"message": "You have exceeded a secondary rate limit"}),
            "transient",
            "rate_limited",
        ),
        (answer(422, {"message": "Validation Failed"}), "config", "http_422"),
        (answer(201, {"expires_at": "2030-01-01T00:00:00Z"}), "transient", "malformed_answer"),
        (HttpResponse(failure="ConnectError"), "transient", "unreachable"),
        (HttpResponse(failure="ReadTimeout", reached=True), "transient", "no_answer"),
    ]
    for response, outcome, error in cases:
        request, result = finished(github_installation_token(app, "42", clock=now), response)
        assert request.url == "https://ghe.example.com/api/v3/app/installations/42/access_tokens"
        assert (result.outcome, result.error) == (outcome, error)
        assert result.retry_safe


def test_github_installation_id_must_be_digits(keys: list[rsa.RSAPrivateKey]) -> None:
    app = GitHubApp("1", pkcs1(keys[0]))
    flow = github_installation_token(app, "42/../../user", clock=now)
    with pytest.raises(StopIteration) as stop:
        next(flow)  # no request at all
    assert (stop.value.value.outcome, stop.value.value.error) == (
        "config",
        "invalid_installation_id",
    )


def test_github_unreachable_api_is_transient(
    drive: Callable[[Flow], Any], keys: list[rsa.RSAPrivateKey]
) -> None:
    app = GitHubApp("1", pkcs1(keys[0]), f"http://127.0.0.1:{free_port()}")
    result = drive(github_installation_token(app, "1", clock=now))
    assert (result.outcome, result.error, result.retry_safe) == ("transient", "unreachable", True)


def test_github_installation_is_checked_against_the_installing_user(
    drive: Callable[[Flow], Any], github: GitHubEmulator, keys: list[rsa.RSAPrivateKey]
) -> None:
    """A spoofed installation_id (another customer's) is not listed for the user."""
    github.register_app("666", keys[0])
    for number in range(150):
        github.install(str(6000 + number), "666")
    github.users["ghu_installer"] = {str(6000 + n) for n in range(120)}  # two pages
    github.users["ghu_other"] = {"6149"}
    app = github_app(github, keys[0], "666")

    assert drive(github_user_has_installation(app, "ghu_installer", "6119")) is True
    assert drive(github_user_has_installation(app, "ghu_installer", "6149")) is False
    assert drive(github_user_has_installation(app, "ghu_other", "6000")) is False
    assert drive(github_user_has_installation(app, "ghu_unknown", "6000")) is None
    assert drive(github_user_has_installation(app, "ghu_other", "6149/..")) is False


# --- Google service accounts -----------------------------------------------------------------


def key_file(
    key: rsa.RSAPrivateKey, email: str, token_uri: str, key_id: str = "k1", **other: str
) -> str:
    return json.dumps(
        {
            "type": "service_account",
            "project_id": "oauthvault-test",
            "private_key_id": key_id,
            "private_key": pkcs8(key),
            "client_email": email,
            "client_id": "1234567890",
            "token_uri": token_uri,
            **other,
        }
    )


def account(
    emulator: GoogleTokenEmulator,
    key: rsa.RSAPrivateKey,
    email: str,
    subject: str | None = None,
    key_id: str = "k1",
) -> ServiceAccount:
    return parse_service_account(
        key_file(key, email, emulator.token_url, key_id),
        scopes=["https://www.googleapis.com/auth/drive.readonly", "openid"],
        subject=subject,
        token_uris={emulator.token_url},
    )


def test_service_account_token_carries_the_documented_claims(
    drive: Callable[[Flow], Any],
    google: GoogleTokenEmulator,
    keys: list[rsa.RSAPrivateKey],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    email = "minter@oauthvault-test.iam.gserviceaccount.com"
    google.register(email, "k1", keys[0])
    sa = account(google, keys[0], email)
    before = google.mints[email]

    result = drive(service_account_token(sa, clock=now, own=True))

    assert result.outcome == "ok", result
    assert result.token["access_token"].startswith("ya29.")
    assert result.token["expires_in"] == 3599
    assert google.header == {"alg": "RS256", "typ": "JWT", "kid": "k1"}
    claims = google.claims or {}
    assert claims["iss"] == email
    assert claims["aud"] == google.token_url
    assert claims["scope"] == "https://www.googleapis.com/auth/drive.readonly openid"
    assert claims["exp"] - claims["iat"] == 3600
    assert "sub" not in claims
    assert google.mints[email] == before + 1
    assert not leaks(result.token["access_token"], repr(result), caplog.text)
    assert not leaks(sa.private_key, repr(sa), caplog.text)


def test_service_account_acts_for_its_subject(
    drive: Callable[[Flow], Any], google: GoogleTokenEmulator, keys: list[rsa.RSAPrivateKey]
) -> None:
    email = "delegate@oauthvault-test.iam.gserviceaccount.com"
    google.register(email, "k1", keys[0])
    sa = account(google, keys[0], email, subject="ada@example.com")

    result = drive(service_account_token(sa, clock=now, own=False))

    assert result.outcome == "ok"
    assert (google.claims or {})["sub"] == "ada@example.com"
    assert google.issued[result.token["access_token"]] == (email, "ada@example.com")


def test_service_account_refusals_are_the_owners_to_fix(
    drive: Callable[[Flow], Any], google: GoogleTokenEmulator, keys: list[rsa.RSAPrivateKey]
) -> None:
    email = "refused@oauthvault-test.iam.gserviceaccount.com"
    google.register(email, "k1", keys[0])
    wrong_key = account(google, keys[1], email)
    wrong_kid = account(google, keys[0], email, key_id="k2")
    google.unauthorized_subjects.add("bob@example.com")
    undelegated = account(google, keys[0], email, subject="bob@example.com")
    unknown = account(google, keys[0], "nobody@oauthvault-test.iam.gserviceaccount.com")

    for sa in (wrong_key, wrong_kid, unknown):
        own = drive(service_account_token(sa, clock=now, own=True))
        apps = drive(service_account_token(sa, clock=now, own=False))
        assert (own.outcome, own.error) == ("reauth", "invalid_grant")
        assert (apps.outcome, apps.error) == ("config", "invalid_grant")
        assert own.description == "Invalid JWT Signature."
    own = drive(service_account_token(undelegated, clock=now, own=True))
    assert (own.outcome, own.error) == ("reauth", "unauthorized_client")
    assert google.mints[email] == 0


def test_service_account_answers_map_to_outcomes(keys: list[rsa.RSAPrivateKey]) -> None:
    sa = ServiceAccount(
        "a@b.iam.gserviceaccount.com",
        pkcs8(keys[0]),
        "k1",
        "https://oauth2.googleapis.com/token",
        ("s",),
    )
    cases = [
        (answer(500, {"error": "internal_failure"}), "transient", "internal_failure"),
        (answer(429, {}), "transient", "http_429"),
        (answer(400, {"error": "invalid_scope"}), "config", "invalid_scope"),
        (answer(403, {}), "reauth", "http_403"),
        (answer(200, {"token_type": "Bearer"}), "transient", "malformed_answer"),
    ]
    for response, outcome, error in cases:
        request, result = finished(service_account_token(sa, clock=now, own=True), response)
        assert request.form is not None
        assert request.form["grant_type"] == "urn:ietf:params:oauth:grant-type:jwt-bearer"
        assert (result.outcome, result.error) == (outcome, error)


def test_service_account_jwt_is_signed_with_the_key_id(keys: list[rsa.RSAPrivateKey]) -> None:
    sa = ServiceAccount(
        "a@b.iam.gserviceaccount.com",
        pkcs8(keys[0]),
        "kid-9",
        "https://oauth2.googleapis.com/token",
        ("x", "y"),
        "u@example.com",
    )
    at = datetime(2030, 6, 1, tzinfo=UTC)
    token = jwt.decode(service_account_jwt(sa, at), RSAKey.import_key(keys[0].public_key()))
    issued = int(at.timestamp())
    assert token.header["kid"] == "kid-9"
    assert token.claims == {
        "iss": "a@b.iam.gserviceaccount.com",
        "scope": "x y",
        "aud": "https://oauth2.googleapis.com/token",
        "iat": issued,
        "exp": issued + 3600,
        "sub": "u@example.com",
    }


# --- two-step exchanges ----------------------------------------------------------------------

TABLEAU_FIELDS = {"pat_name": False, "pat_secret": True, "site": False}
LOOKER_FIELDS = {"client_id": False, "client_secret": True}


def catalog_request(
    emulator: TwoStepEmulator, provider: str, fields: dict[str, bool]
) -> TwoStepRequest:
    table = dict(ENTRIES[provider]["token_request"])
    table["url"] = emulator.loopback(provider, table["url"])
    params = ENTRIES[provider]["connection_params"]
    return parse_two_step(
        table,
        f"providers.{provider}.token_request",
        fields=fields,
        params=params,
        allow_loopback_http=True,
    )


def test_the_catalog_requests_parse_as_written() -> None:
    tableau = parse_two_step(
        ENTRIES["tableau"]["token_request"], "t", fields=TABLEAU_FIELDS, params={"server"}
    )
    looker = parse_two_step(
        ENTRIES["looker"]["token_request"], "l", fields=LOOKER_FIELDS, params={"host"}
    )
    assert tableau.url == "https://{server}/api/3.22/auth/signin"
    assert (tableau.body, tableau.lifetime, tableau.refused) == ("json", 7200, (401,))
    assert tableau.placeholders() == {"server", "pat_name", "pat_secret", "site"}
    assert (looker.body, looker.expires_in_path, looker.refused) == (
        "form",
        "expires_in",
        (401, 403, 404),
    )


@pytest.mark.parametrize("site", ["acme", ""])
def test_tableau_sign_in_mints_a_working_session(
    drive: Callable[[Flow], Any],
    two_step: TwoStepEmulator,
    site: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    name, secret = f"pat-{site or 'default'}", "s3cr3t-pat-value-" + site
    two_step.tableau_pats[name] = (secret, site)
    request = catalog_request(two_step, "tableau", TABLEAU_FIELDS)
    fields = {"pat_name": name, "pat_secret": secret, "site": site}
    params = {"server": "10ay.online.tableau.com"}
    before = two_step.mints[name]

    result = drive(two_step_token(request, fields, params, clock=now))

    assert result.outcome == "ok", result
    assert result.token["expires_in"] == 7200  # the documented lifetime, not the PAT's
    assert two_step.servers[-1] == "10ay.online.tableau.com"
    headers, body = two_step.requests["tableau"]
    assert headers["accept"] == "application/json"
    assert body == {
        "credentials": {
            "personalAccessTokenName": name,
            "personalAccessTokenSecret": secret,
            "site": {"contentUrl": site},
        }
    }
    assert result.response["credentials"]["site"]["id"]  # the site_id token parameter
    base = two_step.loopback("tableau", "10ay.online.tableau.com/api/3.22")
    session = httpx.get(
        f"{base}/sessions/current", headers={"X-Tableau-Auth": result.token["access_token"]}
    )
    assert session.status_code == 200
    assert two_step.mints[name] == before + 1
    assert not leaks(secret, repr(result), repr(request), caplog.text)
    assert not leaks(result.token["access_token"], repr(result), caplog.text)


def test_tableau_sign_in_again_ends_the_earlier_session(
    drive: Callable[[Flow], Any], two_step: TwoStepEmulator
) -> None:
    """Why the vault mints once across processes: a second sign-in with the same PAT
    ends the first session (Tableau's documented behaviour, played by the emulator)."""
    two_step.tableau_pats["pat-twice"] = ("twice-secret", "")
    request = catalog_request(two_step, "tableau", TABLEAU_FIELDS)
    fields = {"pat_name": "pat-twice", "pat_secret": "twice-secret", "site": ""}
    params = {"server": "tableau.example.com"}
    first = drive(two_step_token(request, fields, params, clock=now))
    second = drive(two_step_token(request, fields, params, clock=now))
    base = two_step.loopback("tableau", "tableau.example.com/api/3.22")

    def works(token: str) -> bool:
        response = httpx.get(f"{base}/sessions/current", headers={"X-Tableau-Auth": token})
        return response.status_code == 200

    assert (works(first.token["access_token"]), works(second.token["access_token"])) == (
        False,
        True,
    )


def test_tableau_refused_credentials_need_new_ones(
    drive: Callable[[Flow], Any], two_step: TwoStepEmulator, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    two_step.tableau_pats["pat-revoked"] = ("right-secret", "")
    request = catalog_request(two_step, "tableau", TABLEAU_FIELDS)
    fields = {"pat_name": "pat-revoked", "pat_secret": "wrong-secret-value", "site": ""}

    result = drive(two_step_token(request, fields, {"server": "t.example.com"}, clock=now))

    assert (result.outcome, result.error) == ("reauth", "credentials_refused")
    assert result.description == (
        "summary=Signin Error, detail=Error signing in to Tableau Server, code=401001"
    )
    assert not leaks("wrong-secret-value", repr(result), caplog.text)


def test_looker_login_reads_the_answers_expiry(
    drive: Callable[[Flow], Any], two_step: TwoStepEmulator
) -> None:
    two_step.looker_keys["looker-client"] = "looker-secret-value"
    request = catalog_request(two_step, "looker", LOOKER_FIELDS)
    fields = {"client_id": "looker-client", "client_secret": "looker-secret-value"}

    result = drive(two_step_token(request, fields, {"host": "acme.cloud.looker.com"}, clock=now))

    assert result.outcome == "ok", result
    assert result.token["expires_in"] == TwoStepEmulator.LOOKER_SESSION
    _, form = two_step.requests["looker"]
    assert form == fields
    base = two_step.loopback("looker", "acme.cloud.looker.com/api/4.0")
    user = httpx.get(
        f"{base}/user", headers={"Authorization": f"token {result.token['access_token']}"}
    )
    assert user.status_code == 200

    refused = drive(
        two_step_token(
            request,
            {**fields, "client_secret": "nope"},
            {"host": "acme.cloud.looker.com"},
            clock=now,
        )
    )
    assert (refused.outcome, refused.error) == ("reauth", "credentials_refused")
    assert refused.description == "message=Not found"


def test_two_step_values_cannot_move_the_request(two_step: TwoStepEmulator) -> None:
    request = catalog_request(two_step, "tableau", TABLEAU_FIELDS)
    fields = {"pat_name": "n", "pat_secret": "s", "site": ""}
    for server in ("evil.example.com/x", "a@b", "host:1", ""):
        flow = two_step_token(request, fields, {"server": server}, clock=now)
        with pytest.raises(StopIteration) as stop:
            next(flow)
        assert (stop.value.value.outcome, stop.value.value.error) == ("config", "invalid_parameter")
    flow = two_step_token(request, {"pat_name": "n", "pat_secret": "s"}, {"server": "h"}, clock=now)
    with pytest.raises(StopIteration) as stop:
        next(flow)
    assert stop.value.value.error == "missing_value"
    assert stop.value.value.description == "{site} has no value"


def test_two_step_answers_map_to_outcomes() -> None:
    base = {
        "url": "https://api.example.com/login",
        "body": "json",
        "template": {"user": "{user}", "password": "{password}"},
        "token_path": "data.token",
    }
    fields = {"user": False, "password": True}
    at = parse_two_step({**base, "expires_at_path": "data.expires"}, "x", fields=fields)
    fallback = parse_two_step(
        {**base, "expires_in_path": "data.ttl", "lifetime": 600}, "x", fields=fields
    )
    only_path = parse_two_step({**base, "expires_in_path": "data.ttl"}, "x", fields=fields)
    values = {"user": "u", "password": "pw-secret-1234"}
    clock = lambda: datetime(2030, 1, 1, tzinfo=UTC)  # noqa: E731 - a fixed clock

    def run(request: TwoStepRequest, response: HttpResponse) -> GrantResult:
        sent, result = finished(two_step_token(request, values, {}, clock=clock), response)
        assert sent.json_body == {"user": "u", "password": "pw-secret-1234"}
        assert sent.headers["Accept"] == "application/json"
        return result

    expiring = answer(200, {"data": {"token": "t", "expires": "2030-01-01T02:00:00Z"}})
    assert run(at, expiring).token["expires_in"] == 7200
    assert run(fallback, answer(200, {"data": {"token": "t"}})).token["expires_in"] == 600
    assert (
        run(fallback, answer(200, {"data": {"token": "t", "ttl": "90"}})).token["expires_in"] == 90
    )
    assert run(only_path, answer(200, {"data": {"token": "t"}})).error == "malformed_answer"
    assert run(at, answer(200, {"data": {}})).error == "malformed_answer"
    assert run(at, HttpResponse(200, b"<xml/>", "application/xml")).error == "malformed_answer"
    assert run(at, answer(502, {})).outcome == "transient"
    assert run(at, answer(429, {})).outcome == "transient"
    assert (run(at, answer(400, {})).outcome, run(at, answer(400, {})).error) == (
        "config",
        "http_400",
    )
    refused = run(at, answer(403, {"message": "bad password pw-secret-1234"}))
    assert (refused.outcome, refused.description) == ("reauth", "message=bad password [redacted]")


def test_two_step_form_and_basic() -> None:
    request = parse_two_step(
        {
            "url": "https://{tenant}.example.com/oauth/token",
            "body": "form",
            "template": {"grant_type": "client_credentials", "scope": "api:{tenant}"},
            "basic": {"username": "{key}", "password": "{secret}"},
            "token_path": "access_token",
            "expires_in_path": "expires_in",
        },
        "x",
        fields={"key": False, "secret": True},
        params={"tenant"},
    )
    flow = two_step_token(request, {"key": "k", "secret": "s"}, {"tenant": "acme"}, clock=now)
    sent = next(flow)
    assert sent.url == "https://acme.example.com/oauth/token"
    assert sent.form == {"grant_type": "client_credentials", "scope": "api:acme"}
    assert sent.basic_auth == ("k", "s")
    assert "basic_auth" not in repr(sent) and "form" not in repr(sent)


# --- parse errors ----------------------------------------------------------------------------


def error_of(call: Callable[[], object]) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        call()
    return caught.value


def shown(error: ConfigError) -> str:
    return str(error) + repr(error) + repr(error.__cause__) + repr(error.__context__)


def test_github_app_settings_errors_name_the_key(
    keys: list[rsa.RSAPrivateKey], tmp_path: Path
) -> None:
    pem = pkcs1(keys[0])
    good = {"app_id": "1", "private_key": pem}
    cases = {
        "apps.gh.app_id": {"private_key": pem},
        "apps.gh.private_key": {"app_id": "1"},
        "apps.gh.private_key_file": {**good, "private_key_file": "/x"},
        "apps.gh.api_base_url": {**good, "api_base_url": "http://api.example.com"},
        "apps.gh.app_slug": {**good, "app_slug": "Not A Slug"},
        "apps.gh.client_secret": {**good, "client_secret": "x"},
    }
    for setting, table in cases.items():
        assert error_of(lambda table=table: parse_github_app(table, "apps.gh")).setting == setting
    bad_id = error_of(lambda: parse_github_app({**good, "app_id": "my app"}, "apps.gh"))
    assert bad_id.setting == "apps.gh.app_id"
    garbled = pem.replace("A", "B", 5)
    broken = error_of(lambda: parse_github_app({"app_id": "1", "private_key": garbled}, "apps.gh"))
    assert (broken.setting, broken.problem) == (
        "apps.gh.private_key",
        "is not an unencrypted PEM private key",
    )
    assert garbled[30:90] not in shown(broken) and broken.__context__ is None
    ec_pem = (
        ec.generate_private_key(ec.SECP256R1())
        .private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        .decode()
    )
    not_rsa = error_of(lambda: parse_github_app({"app_id": "1", "private_key": ec_pem}, "apps.gh"))
    assert not_rsa.problem == "must be an RSA private key of at least 2048 bits"
    missing = error_of(
        lambda: parse_github_app(
            {"app_id": "1", "private_key_file": str(tmp_path / "no.pem")}, "apps.gh"
        )
    )
    assert missing.setting == "apps.gh.private_key_file"

    key_path = tmp_path / "app.pem"
    key_path.write_text(pem)
    app = parse_github_app(
        {"app_id": "Iv1.abc", "private_key_file": str(key_path), "app_slug": "my-app"}, "apps.gh"
    )
    assert (app.private_key, app.api_base_url) == (pem, "https://api.github.com")
    assert app.install_url == "https://github.com/apps/my-app/installations/new"
    assert pem not in repr(app)
    loopback = parse_github_app(
        {
            **good,
            "api_base_url": "http://127.0.0.1:9/",
            "install_url": "http://127.0.0.1:9/install",
        },
        "g",
    )
    assert (loopback.api_base_url, loopback.install_url) == (
        "http://127.0.0.1:9",
        "http://127.0.0.1:9/install",
    )


def test_service_account_key_file_errors_never_show_the_key(
    keys: list[rsa.RSAPrivateKey], tmp_path: Path
) -> None:
    uri = "https://oauth2.googleapis.com/token"
    document = json.loads(key_file(keys[0], "sa@p.iam.gserviceaccount.com", uri))
    key_text = document["private_key"]

    def problem(**changes: object) -> ConfigError:
        broken = {k: v for k, v in {**document, **changes}.items() if v is not None}
        return error_of(lambda: parse_service_account(json.dumps(broken), scopes=["s"]))

    assert problem(type="authorized_user").setting == "service_account_json.type"
    assert problem(client_email=None).setting == "service_account_json.client_email"
    assert problem(private_key_id=None).setting == "service_account_json.private_key_id"
    assert problem(token_uri=None).setting == "service_account_json.token_uri"
    assert (
        problem(token_uri="https://evil.example.com/token").setting
        == "service_account_json.token_uri"
    )
    assert (
        problem(token_uri="http://oauth2.googleapis.com/token").setting
        == "service_account_json.token_uri"
    )
    bad_key = problem(private_key=key_text.replace("M", "N", 8))
    assert bad_key.setting == "service_account_json.private_key"
    for error in (bad_key, problem(type="x"), problem(token_uri="https://e.example.com")):
        assert key_text[40:100] not in shown(error) and key_text[200:260] not in shown(error)
    text = json.dumps(document)
    not_json = error_of(lambda: parse_service_account(text[:-5], scopes=["s"]))
    assert (not_json.setting, not_json.__context__) == ("service_account_json", None)
    assert key_text[40:100] not in shown(not_json)
    assert error_of(lambda: parse_service_account(text, scopes=[])).setting == "scopes"
    assert error_of(lambda: parse_service_account(text, scopes=["a b"])).setting == "scopes"
    assert (
        error_of(lambda: parse_service_account(text, scopes=["s"], subject="nobody")).setting
        == "subject"
    )

    sa = parse_service_account(text, scopes=["s"], subject="")
    assert sa.subject is None and sa.token_uri in GOOGLE_TOKEN_URIS
    assert key_text not in repr(sa)

    path = tmp_path / "key.json"
    path.write_text(text)
    app = parse_service_account_app(
        {"scopes": ["s"], "service_account_file": str(path)}, "apps.google"
    )
    assert app.key is not None and app.key.client_email == "sa@p.iam.gserviceaccount.com"
    assert app.account(None, "u@example.com").subject == "u@example.com"
    assert app.account(None, None).private_key == key_text
    no_key = parse_service_account_app({"scopes": ["s"]}, "apps.google")
    assert error_of(lambda: no_key.account(None, None)).setting == "service_account_json"
    assert no_key.account(text, None).client_email == "sa@p.iam.gserviceaccount.com"
    assert (
        error_of(lambda: parse_service_account_app({}, "apps.google")).setting
        == "apps.google.scopes"
    )
    emulated = parse_service_account_app(
        {"scopes": ["s"], "token_uri": "http://127.0.0.1:9/token"}, "a"
    )
    assert "http://127.0.0.1:9/token" in emulated.token_uris


def test_two_step_settings_errors_name_the_key() -> None:
    base: dict[str, Any] = {
        "url": "https://{host}/login",
        "body": "json",
        "template": {"a": {"b": "{user}"}},
        "token_path": "token",
        "lifetime": 60,
    }
    fields = {"user": False, "password": True}
    cases: dict[str, dict[str, Any]] = {
        "t.url": {"url": "https://{host}/{password}/login"},
        "t.template.a.b": {"template": {"a": {"b": "{nobody}"}}},
        "t.template.a": {"body": "form"},
        "t.template.x": {"template": {"x": "{user"}},
        "t.basic.password": {"basic": {"username": "{user}"}},
        "t.expires_at_path": {"expires_in_path": "a", "expires_at_path": "b"},
        "t.lifetime": {"lifetime": None},
        "t.refused": {"refused": [500]},
        "t.token_path": {"token_path": "a..b"},
        "t.method": {"method": "GET"},
        "t.body": {"body": "xml"},
        "t.headers": {"headers": {}},
    }
    for setting, change in cases.items():
        table = {k: v for k, v in {**base, **change}.items() if v is not None}
        error = error_of(
            lambda table=table: parse_two_step(table, "t", fields=fields, params={"host"})
        )
        assert error.setting == setting, (setting, error)
    clash = error_of(lambda: parse_two_step(base, "t", fields=fields, params={"host", "user"}))
    assert clash.setting == "t"
    http = error_of(
        lambda: parse_two_step(
            {**base, "url": "http://{host}/x"}, "t", fields=fields, params={"host"}
        )
    )
    assert http.setting == "t.url"
