"""Minted access tokens: a GitHub App installation's, a Google service account's, and a
two-step exchange's, each as a sans-I/O exchange returning a :class:`GrantResult`.

These credentials have no refresh token: a new access token is minted from a key or from
the customer's credentials whenever the last one runs out. Each exchange is a generator
that yields :class:`HttpRequest` and is sent :class:`HttpResponse`, driven by
:func:`~oauthvault.oauth.token_request.run_sync` or
:func:`~oauthvault.oauth.token_request.run_async`. Outcomes, as for a refresh: ``ok``
(``token`` holds ``access_token``, ``expires_in`` and ``None`` for ``refresh_token`` and
``scope``), ``reauth`` (the connection's grant or credentials are gone), ``config`` (the
app's own settings are wrong) and ``transient``.

- GitHub App installation tokens: an RS256 JWT signed with the app's key (``iat`` 60 s in
  the past against clock drift, ``exp`` 9 minutes ahead, under GitHub's 10-minute limit;
  ``iss`` the app's ID or client ID), sent as a bearer token to
  ``POST /app/installations/{installation_id}/access_tokens``; the 201 answer has the
  ``token`` and its ``expires_at`` (an hour later). GitHub's pages:
  https://docs.github.com/en/apps/creating-github-apps/authenticating-with-a-github-app/generating-a-json-web-token-jwt-for-a-github-app
  and
  https://docs.github.com/en/apps/creating-github-apps/authenticating-with-a-github-app/generating-an-installation-access-token-for-a-github-app
- Google service accounts: the JWT bearer grant of RFC 7523, as
  https://developers.google.com/identity/protocols/oauth2/service-account describes it: an
  RS256 JWT (header ``kid`` the key's id; ``iss`` the account's email, ``scope`` the scopes
  space-joined, ``aud`` the key file's ``token_uri``, ``iat``, ``exp`` an hour later at
  most, ``sub`` the user a domain-wide delegation acts as) posted as ``assertion`` with
  ``grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer``.
- Two-step exchanges: a catalog entry's :class:`~oauthvault.providers.minting.TwoStepRequest`
  filled with the connection's fields and parameters.

No key, JWT, token or credential value ever reaches a result's ``error`` or
``description``, an exception or a log line: provider text goes through
:func:`~oauthvault.oauth.token_request.provider_text` with every secret the request
carried.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Generator, Mapping
from datetime import UTC, datetime
from typing import Any, Literal

from joserfc import jwt

from oauthvault.errors import ConfigError
from oauthvault.oauth.token_request import (
    Exchange,
    GrantResult,
    HttpRequest,
    HttpResponse,
    classify_failure,
    provider_text,
)
from oauthvault.providers.minting import (
    GitHubApp,
    ServiceAccount,
    TwoStepRequest,
    format_placeholders,
    load_rsa_key,
)
from oauthvault.providers.params import URL_SAFE_VALUE, pick

__all__ = [
    "GITHUB_API_VERSION",
    "JWT_BEARER_GRANT",
    "SERVICE_ACCOUNT_JWT_LIFETIME",
    "github_app_jwt",
    "github_installation_token",
    "github_revoke_installation_token",
    "github_user_has_installation",
    "service_account_jwt",
    "service_account_token",
    "two_step_token",
]

Clock = Callable[[], datetime]

#: The REST API version the GitHub requests ask for (``X-GitHub-Api-Version``).
GITHUB_API_VERSION = "2022-11-28"
_GITHUB_ACCEPT = "application/vnd.github+json"
#: GitHub accepts an app JWT issued at most 10 minutes ahead; 9 leaves room for drift.
_GITHUB_JWT_BACKDATE = 60
_GITHUB_JWT_AHEAD = 9 * 60
JWT_BEARER_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
#: Google's longest assertion: ``exp`` at most an hour after ``iat``.
SERVICE_ACCOUNT_JWT_LIFETIME = 3600
_INSTALLATION_ID = re.compile(r"^[0-9]{1,20}$")
_INTEGER = re.compile(r"-?[0-9]{1,12}")
_MAX_SECONDS = 10 * 365 * 24 * 3600
_ERROR_TEXT_KEYS = ("error", "error_description", "message", "summary", "detail", "code")


# --- shared pieces ---------------------------------------------------------------------------


def _now(clock: Clock) -> datetime:
    now = clock()
    if now.tzinfo is None or now.utcoffset() is None:
        raise ConfigError("clock", "must return timezone-aware times")
    return now


def _document(response: HttpResponse) -> Mapping[str, Any] | None:
    try:
        value = json.loads(response.body)
    except (ValueError, UnicodeError):
        return None
    return value if isinstance(value, dict) else None


def _no_answer(response: HttpResponse) -> GrantResult:
    """A transport failure: minting again is harmless, so always safe to retry."""
    error = "no_answer" if response.reached else None
    return classify_failure(None, error, response.failure, retry_safe=True)


def _summary(document: Mapping[str, Any] | None, secrets: tuple[str, ...]) -> str | None:
    """The error-ish text of an answer (never its other fields), fit to show."""
    if document is None:
        return None
    parts: list[str] = []

    def collect(table: Mapping[str, Any], depth: int) -> None:
        for key in _ERROR_TEXT_KEYS:
            value = table.get(key)
            if isinstance(value, Mapping) and depth == 0:
                collect(value, 1)  # Tableau: {"error": {"summary", "detail", "code"}}
            elif isinstance(value, (str, int)) and not isinstance(value, bool):
                parts.append(f"{key}={str(value)[:80]}")

    collect(document, 0)
    return provider_text(", ".join(parts), secrets)


def _seconds(value: object) -> int | None:
    """A positive number of seconds (an integer, or its digits as a string)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str) and _INTEGER.fullmatch(value):
        value = int(value)
    if isinstance(value, float) and math.isfinite(value):
        value = int(value)
    if isinstance(value, int) and 0 < value <= _MAX_SECONDS:
        return value
    return None


def _seconds_until(value: object, now: datetime) -> int | None:
    """Seconds from ``now`` until an ISO 8601 time (UTC when it names no offset)."""
    if not isinstance(value, str) or len(value) > 64:
        return None
    try:
        at = datetime.fromisoformat(value)
    except ValueError:
        return None
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    left = int((at - now).total_seconds())
    return left if 0 < left <= _MAX_SECONDS else None


def _minted(access_token: str, expires_in: int | None, document: Mapping[str, Any]) -> GrantResult:
    token = {
        "access_token": access_token,
        "refresh_token": None,
        "expires_in": expires_in,
        "scope": None,
    }
    return GrantResult("ok", token=token, response=dict(document))


def _malformed(description: str) -> GrantResult:
    return GrantResult("transient", error="malformed_answer", description=description)


# --- GitHub App installation tokens ------------------------------------------------------


def github_app_jwt(app: GitHubApp, now: datetime) -> str:
    """The app's RS256 JWT at ``now`` (timezone-aware): header ``alg=RS256``, ``typ=JWT``;
    ``iat`` 60 s before ``now``, ``exp`` 9 minutes after, ``iss`` the app's ID.

    Raises:
        ConfigError: the app's private key is malformed (the key never shown).
    """
    key = load_rsa_key(app.private_key, "github_app.private_key")
    issued = int(now.timestamp())
    claims = {
        "iat": issued - _GITHUB_JWT_BACKDATE,
        "exp": issued + _GITHUB_JWT_AHEAD,
        "iss": app.app_id,
    }
    return jwt.encode({"alg": "RS256", "typ": "JWT"}, claims, key)


def _github_headers(bearer: str) -> dict[str, str]:
    return {
        "Authorization": f"Bearer {bearer}",
        "Accept": _GITHUB_ACCEPT,
        "X-GitHub-Api-Version": GITHUB_API_VERSION,
    }


def github_installation_token(app: GitHubApp, installation_id: str, *, clock: Clock) -> Exchange:
    """A new installation access token for ``installation_id`` (digits).

    Outcomes: ``ok`` on GitHub's 201 (``expires_in`` from its ``expires_at``); ``reauth``
    on 404 or 403 (the installation was removed or suspended: the customer must install
    the app again); ``config`` on 401 (GitHub refused the app's JWT: a wrong key or app
    ID), on 422 and other 4xx; ``transient`` on 429, 5xx, a secondary rate limit (403
    saying so) and transport failures.
    """
    if not isinstance(installation_id, str) or not _INSTALLATION_ID.match(installation_id):
        return GrantResult("config", error="invalid_installation_id", description="must be digits")
    try:
        now = _now(clock)
        assertion = github_app_jwt(app, now)
    except ConfigError as error:
        return GrantResult("config", error="invalid_configuration", description=str(error))
    url = f"{app.api_base_url}/app/installations/{installation_id}/access_tokens"
    response = yield HttpRequest("POST", url, _github_headers(assertion))
    if response.failure is not None:
        return _no_answer(response)
    document = _document(response)
    secrets = (assertion,)
    if response.status in (200, 201):
        if document is None:
            return _malformed("the answer is not a JSON object")
        token = document.get("token")
        if not isinstance(token, str) or not token:
            return _malformed("no token")
        return _minted(token, _seconds_until(document.get("expires_at"), now), document)
    text = _summary(document, secrets)
    message = str((document or {}).get("message", "")).lower()
    if response.status == 401:
        return GrantResult("config", error="app_jwt_refused", description=text)
    if response.status == 403 and "rate limit" in message:
        return GrantResult("transient", error="rate_limited", description=text)
    if response.status == 403:
        return GrantResult("reauth", error="installation_suspended", description=text)
    if response.status == 404:
        return GrantResult("reauth", error="installation_not_found", description=text)
    if response.status == 429 or response.status >= 500:
        return GrantResult("transient", error=f"http_{response.status}", description=text)
    return GrantResult("config", error=f"http_{response.status}", description=text)


def github_revoke_installation_token(
    app: GitHubApp, token: str
) -> Generator[HttpRequest, HttpResponse, bool]:
    """Revoke an installation access token (``DELETE /installation/token`` with the token
    as bearer). ``True`` only when GitHub confirmed (204)."""
    url = f"{app.api_base_url}/installation/token"
    response = yield HttpRequest("DELETE", url, _github_headers(token))
    return response.failure is None and response.status == 204


def github_user_token(
    oauth_url: str, client_id: str, client_secret: str, code: str
) -> Generator[HttpRequest, HttpResponse, str | None]:
    """The user access token a ``code`` stands for (``POST {oauth_url}/login/oauth/access_token``
    with the app's client id and secret, answered as JSON), or ``None`` when GitHub refused
    the code or could not be reached. The app asks for it only to check which
    installations the user who installed it can reach
    (https://docs.github.com/en/apps/creating-github-apps/authenticating-with-a-github-app/generating-a-user-access-token-for-a-github-app)."""
    form = {"client_id": client_id, "client_secret": client_secret, "code": code}
    url = f"{oauth_url}/login/oauth/access_token"
    response = yield HttpRequest("POST", url, {"Accept": "application/json"}, form=form)
    document = _document(response) if response.failure is None else None
    token = (document or {}).get("access_token")
    if response.status != 200 or not isinstance(token, str) or not token:
        return None
    return token


_INSTALLATION_PAGES = 10  # 100 installations a page: more than any user is expected to see


def github_user_has_installation(
    app: GitHubApp, user_token: str, installation_id: str
) -> Generator[HttpRequest, HttpResponse, bool | None]:
    """Whether the user whose token this is can reach installation ``installation_id``
    (``GET /user/installations`` with a user access token of the app).

    GitHub warns that the ``installation_id`` its setup URL receives can be spoofed: a
    connection must not take it on trust, but check it with the token of the user who
    installed the app (the app's "Request user authorization (OAuth) during installation"
    sends a ``code`` with it). ``True``: listed; ``False``: not listed; ``None``: GitHub
    could not say (refused the token, failed, or answered something else). See
    https://docs.github.com/en/apps/creating-github-apps/registering-a-github-app/about-the-setup-url
    """
    if not _INSTALLATION_ID.match(installation_id):
        return False
    for page in range(1, _INSTALLATION_PAGES + 1):
        url = f"{app.api_base_url}/user/installations?per_page=100&page={page}"
        response = yield HttpRequest("GET", url, _github_headers(user_token))
        document = _document(response) if response.failure is None else None
        listed = (document or {}).get("installations")
        if response.status != 200 or not isinstance(listed, list):
            return None
        if any(isinstance(i, dict) and str(i.get("id")) == installation_id for i in listed):
            return True
        if len(listed) < 100:
            return False
    return False


# --- Google service accounts ---------------------------------------------------------------


def service_account_jwt(account: ServiceAccount, now: datetime) -> str:
    """The signed assertion for ``account`` at ``now`` (timezone-aware): header
    ``alg=RS256``, ``typ=JWT``, ``kid`` = ``private_key_id``; claims ``iss``, ``scope``,
    ``aud`` = ``token_uri``, ``iat``, ``exp`` = ``iat`` + 3600 and ``sub`` when the account
    acts for a subject.

    Raises:
        ConfigError: the key is malformed (never shown).
    """
    key = load_rsa_key(account.private_key, "service_account_json.private_key")
    issued = int(now.timestamp())
    claims: dict[str, Any] = {
        "iss": account.client_email,
        "scope": " ".join(account.scopes),
        "aud": account.token_uri,
        "iat": issued,
        "exp": issued + SERVICE_ACCOUNT_JWT_LIFETIME,
    }
    if account.subject:
        claims["sub"] = account.subject
    header = {"alg": "RS256", "typ": "JWT", "kid": account.private_key_id}
    return jwt.encode(header, claims, key)


def service_account_token(account: ServiceAccount, *, clock: Clock, own: bool) -> Exchange:
    """A new access token for ``account`` by the JWT bearer grant.

    ``own``: the key file is the connection's (a customer's), not the app's. A refused
    assertion (``invalid_grant``, ``unauthorized_client``, HTTP 401 or 403) is then
    ``reauth`` (the customer must give a working key), else ``config`` (the app's key or
    its delegation is wrong). Other refusals (``invalid_scope``, ``invalid_request``) are
    ``config``; 429, 5xx and transport failures ``transient``.
    """
    refused: Literal["reauth", "config"] = "reauth" if own else "config"
    try:
        now = _now(clock)
        assertion = service_account_jwt(account, now)
    except ConfigError as problem:
        return GrantResult(refused, error="invalid_key", description=str(problem))
    form = {"grant_type": JWT_BEARER_GRANT, "assertion": assertion}
    request = HttpRequest("POST", account.token_uri, {"Accept": "application/json"}, form=form)
    response = yield request
    if response.failure is not None:
        return _no_answer(response)
    document = _document(response)
    secrets = (assertion,)
    code = (document or {}).get("error")
    error = code[:100] if isinstance(code, str) and code else None
    if response.status == 200 and error is None:
        access = (document or {}).get("access_token")
        if document is None or not isinstance(access, str) or not access:
            return _malformed("no access_token")
        return _minted(access, _seconds(document.get("expires_in")), document)
    description = provider_text((document or {}).get("error_description"), secrets)
    if response.status == 429 or response.status >= 500:
        return GrantResult(
            "transient", error=error or f"http_{response.status}", description=description
        )
    if error in ("invalid_grant", "unauthorized_client") or response.status in (401, 403):
        return GrantResult(
            refused, error=error or f"http_{response.status}", description=description
        )
    return GrantResult("config", error=error or f"http_{response.status}", description=description)


# --- two-step exchanges ----------------------------------------------------------------------


class _Missing(Exception):
    """A placeholder without a value, or a URL value that could move the request."""

    def __init__(self, error: str, name: str) -> None:
        super().__init__(name)
        self.error = error
        self.name = name


def _fill(text: str, values: Mapping[str, str], *, in_url: bool = False) -> str:
    for name in format_placeholders(text):
        if name not in values:
            raise _Missing("missing_value", name)
        if in_url and not URL_SAFE_VALUE.match(values[name]):
            raise _Missing("invalid_parameter", name)
    return re.sub(r"\{([A-Za-z][A-Za-z0-9_]{0,49})\}", lambda m: values[m[1]], text)


def _fill_template(template: Mapping[str, Any], values: Mapping[str, str]) -> dict[str, Any]:
    filled: dict[str, Any] = {}
    for key, value in template.items():
        if isinstance(value, str):
            filled[key] = _fill(value, values)
        elif isinstance(value, Mapping):
            filled[key] = _fill_template(value, values)
        else:
            filled[key] = value
    return filled


def two_step_token(
    request: TwoStepRequest,
    fields: Mapping[str, str],
    params: Mapping[str, str],
    *,
    clock: Clock,
) -> Exchange:
    """A new token by ``request`` filled with the connection's credential ``fields`` and
    connection ``params`` (an optional field that was not given must be passed as ``""``).

    Outcomes: ``ok`` with the token at ``token_path`` and its expiry as configured;
    ``reauth`` on a ``refused`` status (the credentials no longer work); ``transient`` on
    429, 5xx, transport failures and an answer without the token (``malformed_answer``);
    ``config`` on other 4xx answers and on a placeholder without a value.
    """
    values = {**params, **fields}
    secrets = tuple(value for value in fields.values() if value)
    try:
        now = _now(clock)
        url = _fill(request.url, values, in_url=True)
        template = _fill_template(request.template, values)
        basic = None
        if request.basic is not None:
            basic = (_fill(request.basic[0], values), _fill(request.basic[1], values))
    except _Missing as problem:
        rule = "has no value" if problem.error == "missing_value" else "is not URL-safe"
        return GrantResult("config", error=problem.error, description=f"{{{problem.name}}} {rule}")
    except ConfigError as error:
        return GrantResult("config", error="invalid_configuration", description=str(error))
    headers = {"Accept": "application/json"}
    if request.body == "json":
        sent = HttpRequest(request.method, url, headers, json_body=template, basic_auth=basic)
    else:
        form = {key: str(value) for key, value in template.items()}
        sent = HttpRequest(request.method, url, headers, form=form, basic_auth=basic)
    response = yield sent
    if response.failure is not None:
        return _no_answer(response)
    document = _document(response)
    if response.status in request.refused:
        text = _summary(document, secrets)
        return GrantResult("reauth", error="credentials_refused", description=text)
    if response.status == 429 or response.status >= 500:
        text = _summary(document, secrets)
        return GrantResult("transient", error=f"http_{response.status}", description=text)
    if not 200 <= response.status < 300:
        text = _summary(document, secrets)
        return GrantResult("config", error=f"http_{response.status}", description=text)
    if document is None:
        return _malformed("the answer is not a JSON object")
    token = pick(document, request.token_path)
    if not isinstance(token, str) or not token:
        return _malformed(f"no token at {request.token_path}")
    expires_in: int | None = None
    if request.expires_in_path is not None:
        expires_in = _seconds(pick(document, request.expires_in_path))
    elif request.expires_at_path is not None:
        expires_in = _seconds_until(pick(document, request.expires_at_path), now)
    if expires_in is None:
        expires_in = request.lifetime
    if expires_in is None:
        return _malformed("no expiry where the catalog says")
    return _minted(token, expires_in, document)
