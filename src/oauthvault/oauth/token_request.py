"""Token requests as each provider's catalog entry shapes them: the code exchange and the
refresh grant, and what their answers mean.

The catalog says what differs from RFC 6749: extra token or refresh parameters
(``token_params`` / ``refresh_params``), a JSON body (``token_body``), a separate
``refresh_endpoint``, tokens nested under ``token_path`` when the top level has none, a
``success_field`` that is ``false`` on errors (Slack's ``ok``), the fields that carry the
error code (``error_fields``) and the codes that mean the grant is gone
(``dead_grant_errors``), and where the expiry comes from when the answer has no
``expires_in`` (``expiry = "introspection"``, then ``access_token_lifetime``).

The exchange is written once, as a generator that yields :class:`HttpRequest` and is sent
:class:`HttpResponse` (no I/O here); :func:`run_sync` and :func:`run_async` drive it with
httpx. Client credentials go in an :class:`httpx.BasicAuth` header or the body, and never
into a log line, exception or result; the drivers keep query strings out of httpx's own
request log (:func:`install_httpx_log_redaction`).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import re
import time
from collections.abc import Generator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import parse_qsl

import httpx

from oauthvault.errors import ConfigError
from oauthvault.providers.params import pick, pick_params
from oauthvault.providers.spec import ProviderSpec

__all__ = [
    "Exchange",
    "GrantResult",
    "HttpRequest",
    "HttpResponse",
    "classify_failure",
    "exchange",
    "install_httpx_log_redaction",
    "is_client_refusal",
    "provider_text",
    "run_async",
    "run_sync",
]

# RFC 6749 §5.2 answers after which retrying cannot help: the grant is gone.
_REAUTH_ERRORS = frozenset({"invalid_grant", "invalid_scope"})
# The provider refused the app's own client (its id, secret or allowed grant types): the
# app's configuration is wrong, whichever connection the request was for.
CLIENT_REFUSALS = frozenset({"invalid_client", "unauthorized_client"})
# Our own request is wrong: not the user's doing, and not transient either.
_CONFIG_ERRORS = CLIENT_REFUSALS | {"invalid_request", "unsupported_grant_type"}
# Fields of an error body worth recording; never anything else (it could be a token).
_INTEGER = re.compile(r"-?[0-9]{1,12}")
# What a provider's free text may keep: printable characters, one space between words.
_UNPRINTABLE = re.compile(r"[^\x20-\x7e\u00a0-\uffff]+|\s+")
# A run that looks like a token or a key (long, and only token characters): never shown.
_TOKEN_LIKE = re.compile(r"[A-Za-z0-9._~+/=-]{32,}")
_TEXT_LIMIT = 200
_MAX_SECONDS = 10 * 365 * 24 * 3600  # ten years: beyond it a unit mistake, not a lifetime
_ERROR_KEYS = ("error", "error_description", "status", "message", "code", "error_code")


@dataclass(frozen=True, slots=True)
class GrantResult:
    """What one token request came to. When ``outcome == "ok"``, ``token`` holds the
    normalized tokens (``access_token``, ``refresh_token``, ``expires_in``, ``scope``),
    ``response`` the provider's whole answer and ``params`` the connection parameters read
    from it."""

    outcome: Literal["ok", "reauth", "config", "transient"]
    token: Mapping[str, Any] | None = field(default=None, repr=False)
    error: str | None = None
    description: str | None = None
    # False when the request may have reached the provider (a rotated refresh token
    # could then already be retired): retrying with the old one would kill the grant.
    retry_safe: bool = True
    response: Mapping[str, Any] | None = field(default=None, repr=False)
    params: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class HttpRequest:
    method: str
    url: str = field(repr=False)  # a revocation may carry the token in its query
    headers: Mapping[str, str] = field(default_factory=dict, repr=False)
    form: Mapping[str, str] | None = field(default=None, repr=False)
    json_body: Mapping[str, Any] | None = field(default=None, repr=False)  # may nest
    basic_auth: tuple[str, str] | None = field(default=None, repr=False)
    # Seconds to wait for the answer once the request is sent, when longer than the
    # client's own read timeout: a refresh that may rotate the refresh token is waited for
    # (giving up on it would leave the rotation unknown).
    answer_timeout: float | None = None


@dataclass(frozen=True, slots=True)
class HttpResponse:
    """An answer, or ``failure`` (the transport error's class name) and ``reached``
    (whether the request may have arrived) when there was none."""

    status: int = 0
    body: bytes = field(default=b"", repr=False)
    content_type: str = ""
    failure: str | None = None
    reached: bool = False


Exchange = Generator[HttpRequest, HttpResponse, GrantResult]


def provider_text(value: object, secrets: tuple[str, ...] = ()) -> str | None:
    """A provider's free text (an ``error_description``) fit to show and log (pure): one
    line of printable characters, at most 200, with every secret the request carried and
    anything that looks like a token replaced by ``[redacted]``; ``None`` when empty."""
    if not isinstance(value, str):
        return None
    text = value
    for secret in secrets:
        if secret:
            text = text.replace(secret, "[redacted]")
    text = _TOKEN_LIKE.sub("[redacted]", _UNPRINTABLE.sub(" ", text)).strip()
    if len(text) > _TEXT_LIMIT:
        text = text[: _TEXT_LIMIT - 1] + "\u2026"
    return text or None


def is_client_refusal(result: GrantResult) -> bool:
    """Whether the provider refused the app's own client (``invalid_client``,
    ``unauthorized_client``): a configuration error, not the connection's (pure)."""
    return result.outcome == "config" and result.error in CLIENT_REFUSALS


def classify_failure(
    status_code: int | None,
    error: str | None,
    description: str | None,
    *,
    retry_safe: bool,
    dead_grant_errors: tuple[str, ...] = (),
) -> GrantResult:
    """Map a failed token request to an outcome (pure)."""
    if error in _REAUTH_ERRORS or (error is not None and error in dead_grant_errors):
        return GrantResult("reauth", error=error, description=description)
    if error in _CONFIG_ERRORS:
        return GrantResult("config", error=error, description=description)
    if status_code is not None and 400 <= status_code < 500 and status_code != 429:
        if error is not None:
            return GrantResult("config", error=error, description=description)
    return GrantResult(
        "transient",
        error=error or (f"http_{status_code}" if status_code else "unreachable"),
        description=description,
        retry_safe=retry_safe,
    )


def _client_credentials(
    spec: ProviderSpec, client_id: str, secret: str | None
) -> tuple[dict[str, str], tuple[str, str] | None]:
    """Body fields and Basic credentials for the token endpoint's client authentication."""
    method = spec.token_endpoint_auth_method
    if method == "client_secret_basic":
        return {}, (client_id, secret or "")
    if method == "client_secret_post":
        return {"client_id": client_id, **({"client_secret": secret} if secret else {})}, None
    raise ConfigError(
        f"providers.{spec.name}.token_endpoint_auth_method", f"{method} is not supported"
    )


def _request(
    spec: ProviderSpec, url: str, fields: dict[str, str], client_id: str, secret: str | None
) -> HttpRequest:
    body, basic = _client_credentials(spec, client_id, secret)
    body = {**fields, **body}
    headers = {"Accept": "application/json"}
    if spec.token_body == "json":  # noqa: S105 - a body format
        return HttpRequest("POST", url, headers, json_body=body, basic_auth=basic)
    return HttpRequest("POST", url, headers, form=body, basic_auth=basic)


def _document(response: HttpResponse) -> Mapping[str, Any] | None:
    try:
        value = json.loads(response.body)
    except ValueError:
        value = None
    if isinstance(value, dict):
        return value
    if "x-www-form-urlencoded" in response.content_type or "text/plain" in response.content_type:
        try:
            pairs = parse_qsl(response.body.decode("utf-8"), strict_parsing=True)
        except (UnicodeDecodeError, ValueError):
            return None
        return dict(pairs)
    return None


def _error_code(spec: ProviderSpec, document: Mapping[str, Any]) -> str | None:
    for name in spec.error_fields:
        value = pick(document, name)
        if isinstance(value, str) and value:
            return value[:100]
    return None


def _error_summary(document: Mapping[str, Any] | None) -> str | None:
    """The error-ish fields of an answer, for ``last_error``: never other fields."""
    if document is None:
        return None
    parts = [
        f"{key}={str(document[key])[:80]}"
        for key in _ERROR_KEYS
        if isinstance(document.get(key), (str, int)) and not isinstance(document.get(key), bool)
    ]
    return ", ".join(parts) or None


def _seconds(value: object) -> int | None:
    """``expires_in`` as seconds; ``None`` when absent, malformed, or zero or negative,
    which providers use to mean "does not expire" (Mailchimp ``0``, Egnyte ``-1``)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str) and _INTEGER.fullmatch(value):
        value = int(value)
    if isinstance(value, int):
        return value if 0 < value <= _MAX_SECONDS else None
    return None


def _failed(
    spec: ProviderSpec,
    response: HttpResponse,
    document: Mapping[str, Any] | None,
    *,
    rotating: bool,
    refresh: bool,
    secrets: tuple[str, ...] = (),
) -> GrantResult | None:
    """The failure an answer (and its parsed ``document``) stands for, or ``None`` when
    it is a success. ``secrets`` (what the request carried) never reach the description."""
    dead = spec.dead_grant_errors
    if response.failure is not None:
        retry_safe = not (response.reached and rotating and refresh)
        error = "no_answer" if response.reached else None
        return classify_failure(None, error, response.failure, retry_safe=retry_safe)
    if document is None:
        return classify_failure(response.status, None, "the answer is not JSON", retry_safe=True)
    failed_flag = spec.success_field is not None and pick(document, spec.success_field) is False
    error = _error_code(spec, document)
    if (
        response.status >= 400
        or failed_flag
        or (error is not None and "access_token" not in document)
    ):
        description = provider_text(document.get("error_description"), secrets)
        if error is None:
            summary = provider_text(_error_summary(document), secrets)
            return classify_failure(response.status, None, summary, retry_safe=True)
        return classify_failure(
            response.status, error, description, retry_safe=True, dead_grant_errors=dead
        )
    return None


def _tokens(spec: ProviderSpec, document: Mapping[str, Any]) -> Mapping[str, Any]:
    """Where the token fields are: the top level, or ``token_path`` when it has none."""
    if not document.get("access_token") and spec.token_path is not None:
        nested = pick(document, spec.token_path)
        if isinstance(nested, Mapping) and nested.get("access_token"):
            return nested
    return document


def exchange(
    spec: ProviderSpec,
    *,
    client_id: str,
    client_secret: str | None,
    grant: Literal["authorization_code", "refresh_token", "client_credentials"],
    fields: Mapping[str, str],
    rotating: bool = False,
    answer_window: float | None = None,
    clock: Any = time.time,
) -> Exchange:
    """One token request (``fields``: ``code``, ``redirect_uri``, ``code_verifier`` or
    ``refresh_token``), its answer read as ``spec`` says, the expiry found. A refresh of
    a ``rotating`` provider waits ``answer_window`` seconds for its answer once sent."""
    refresh = grant == "refresh_token"
    extra = spec.token_params
    if refresh and spec.refresh_params is not None:
        extra = spec.refresh_params
    url = (spec.refresh_endpoint or spec.token_endpoint) if refresh else spec.token_endpoint
    body = {**extra, "grant_type": grant, **{k: v for k, v in fields.items() if v}}
    request = _request(spec, url, body, client_id, client_secret)
    if refresh and rotating and answer_window is not None:
        request = dataclasses.replace(request, answer_timeout=answer_window)
    response = yield request
    document = _document(response) if response.failure is None else None
    secrets = (*fields.values(), client_secret or "")
    failure = _failed(spec, response, document, rotating=rotating, refresh=refresh, secrets=secrets)
    if failure is not None:
        return failure
    assert document is not None  # noqa: S101 - _failed checked it
    tokens = _tokens(spec, document)
    access = tokens.get("access_token")
    if not isinstance(access, str) or not access:
        return GrantResult("transient", error="malformed_answer", description="no access_token")
    refresh_token = tokens.get("refresh_token")
    expires_in = _seconds(tokens.get("expires_in"))
    if expires_in is None and spec.expiry == "introspection" and spec.introspection_endpoint:
        expires_in = yield from _introspect(spec, access, client_id, client_secret, clock)
    renewable = bool(refresh_token) or grant in ("refresh_token", "client_credentials")
    if expires_in is None and renewable and spec.access_token_lifetime is not None:
        # Only when it can be renewed: otherwise a guessed expiry would end the connection.
        expires_in = spec.access_token_lifetime
    scope = tokens.get("scope")
    try:
        params = pick_params(
            spec.connection_params, "token", document, provider=spec.name, lenient=refresh
        )
    except Exception as error:  # a ProviderError naming the missing value
        return GrantResult("transient", error="malformed_answer", description=str(error)[:200])
    normalized = {
        "access_token": access,
        "refresh_token": refresh_token
        if isinstance(refresh_token, str) and refresh_token
        else None,
        "expires_in": expires_in,
        "scope": scope if isinstance(scope, str) else None,
    }
    if isinstance(document.get("id_token"), str):
        normalized["id_token"] = document["id_token"]
    return GrantResult("ok", token=normalized, response=dict(document), params=params)


def _introspect(
    spec: ProviderSpec, access_token: str, client_id: str, secret: str | None, clock: Any
) -> Generator[HttpRequest, HttpResponse, int | None]:
    """RFC 7662 introspection of the new access token: seconds until its ``exp``."""
    assert spec.introspection_endpoint is not None  # noqa: S101 - checked by the caller
    fields = {"token": access_token, "token_type_hint": "access_token"}
    body, basic = _client_credentials(spec, client_id, secret)
    request = HttpRequest(
        "POST",
        spec.introspection_endpoint,
        {"Accept": "application/json"},
        form={**fields, **body},
        basic_auth=basic,
    )
    response = yield request
    if response.failure is not None or response.status != 200:
        return None
    document = _document(response)
    if document is None or document.get("active") is not True:
        return None
    exp = document.get("exp")
    if isinstance(exp, bool) or not isinstance(exp, (int, float)) or not math.isfinite(exp):
        return None
    left = int(exp - clock())
    return left if 0 < left <= _MAX_SECONDS else None


class _QueryRedactingFilter(logging.Filter):
    """Strips query strings from httpx's request log lines: a revocation sent as a query
    (Zoho) would otherwise log its token at INFO."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and record.args:
            record.args = tuple(
                _without_query(arg) if isinstance(arg, (str, httpx.URL)) else arg
                for arg in record.args
            )
        return True


def _without_query(value: str | httpx.URL) -> str:
    text = str(value)
    return text.split("?", 1)[0] + ("?[redacted]" if "?" in text else "")


_REDACTOR = _QueryRedactingFilter()


def install_httpx_log_redaction() -> None:
    """Strip query strings from httpx's request log lines (its ``httpx`` logger), where a
    token sent in a query (a Zoho revocation) would otherwise show at INFO. Idempotent;
    the drivers below call it before their first request, so importing oauthvault leaves
    logging alone."""
    logging.getLogger("httpx").addFilter(_REDACTOR)  # addFilter never adds one twice


def _send_options(request: HttpRequest, timeout: httpx.Timeout) -> dict[str, Any]:
    options: dict[str, Any] = {"headers": dict(request.headers)}
    if request.answer_timeout is not None:
        options["timeout"] = httpx.Timeout(
            connect=timeout.connect,
            read=max(request.answer_timeout, timeout.read or 0),
            write=timeout.write,
            pool=timeout.pool,
        )
    if request.form is not None:
        options["data"] = dict(request.form)
    if request.json_body is not None:
        options["json"] = dict(request.json_body)
    if request.basic_auth is not None:
        options["auth"] = httpx.BasicAuth(*request.basic_auth)
    return options


def _answer(response: httpx.Response) -> HttpResponse:
    return HttpResponse(
        response.status_code, response.content, response.headers.get("content-type", "")
    )


def _transport_failure(error: Exception) -> HttpResponse:
    reached = not isinstance(error, (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout))
    return HttpResponse(failure=type(error).__name__, reached=reached)


def run_sync(flow: Generator[HttpRequest, HttpResponse, Any], http: httpx.Client) -> Any:
    """Drive ``flow`` with blocking httpx calls; returns its result."""
    install_httpx_log_redaction()
    try:
        request = next(flow)
        while True:
            try:
                options = _send_options(request, http.timeout)
                answer = _answer(http.request(request.method, request.url, **options))
            except httpx.HTTPError as error:
                answer = _transport_failure(error)
            request = flow.send(answer)
    except StopIteration as stop:
        return stop.value


async def run_async(
    flow: Generator[HttpRequest, HttpResponse, Any], http: httpx.AsyncClient
) -> Any:
    """Drive ``flow`` with httpx's asyncio client; returns its result."""
    install_httpx_log_redaction()
    try:
        request = next(flow)
        while True:
            try:
                options = _send_options(request, http.timeout)
                sent = await http.request(request.method, request.url, **options)
                answer = _answer(sent)
            except httpx.HTTPError as error:
                answer = _transport_failure(error)
            request = flow.send(answer)
    except StopIteration as stop:
        return stop.value
