"""The authenticated API proxy: ``/v1/proxy/{path}``, any method.

The caller names a connection in headers (``Oauthvault-Provider``,
``Oauthvault-Workspace-Id``, ``Oauthvault-Actor-Id``) and authenticates with its API key as
for the rest of ``/v1``. The path, query and body are the provider API's own: they are sent
to the connection's API base URL (:mod:`oauthvault.providers.api_targets`), with the
credential placed as its kind requires, over a transport that connects only to public
addresses (:mod:`oauthvault.oauth.guarded_transport`; loopback only for an app's explicit
loopback test double). The caller never holds the credential.

- **Sent**: the caller's headers without its ``Authorization``, cookies, ``Oauthvault-*``
  and hop-by-hop headers (RFC 9110 §7.6.1), plus the credential (a caller's header of the
  credential's name is not sent) and the API's constant headers (``api_headers``: sent
  unless the caller sent one of the name; see :mod:`oauthvault.providers.rate_limits`);
  the body streamed.
- **A 401** to a renewable credential (OAuth, app-minted, two-step) is renewed once through
  the refresh lease (however many calls were refused at once: one grant) and the request
  sent again, when its body can be sent again (none, or one of at most
  :data:`MAX_REPLAY_BODY` bytes); a second 401 goes back to the caller. A 401 or 403 to an
  API key is checked with the entry's verification request (a refusal marks the
  connection ``needs_reauth``) and passed back.
- **429 and 503** with a ``Retry-After`` (or, a 429 without one, the reset header the
  catalog documents: ``rate_limit_reset``) of at most ``OAUTHVAULT_PROXY_RETRY_AFTER_CAP``
  seconds are waited out (with jitter) and sent again, at most ``OAUTHVAULT_PROXY_RETRIES``
  times, for idempotent methods or requests with an ``Idempotency-Key``; otherwise the
  provider's answer goes back at once, the wait in ``Oauthvault-Retry-After``.
- **Redirects** are followed (GET and HEAD, five at most) only to a host the provider owns;
  another is refused (``502 redirect_refused``).
- **Answers**: the provider's own answer passes through unchanged (status, safe headers,
  body streamed); the vault's own refusals are ``application/problem+json`` with an
  ``Oauthvault-Error`` header naming their code, so "the provider said 404" and "the vault
  has no such connection" never look alike.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import urlencode, urlsplit

import httpx
from fastapi import APIRouter, Request
from prometheus_client import Histogram
from starlette.background import BackgroundTask
from starlette.responses import Response, StreamingResponse

from oauthvault.config import Settings
from oauthvault.errors import (
    ReauthorizationRequired,
    TokenNotFound,
    VaultError,
)
from oauthvault.models import TokenKey
from oauthvault.oauth.guarded_transport import AddressRefused, AsyncGuardedTransport
from oauthvault.providers.api_targets import TargetRefused, allows_redirect, build_url
from oauthvault.providers.rate_limits import outgoing_headers, retry_wait
from oauthvault.service.api import require_api_key
from oauthvault.service.edge import PROXY_PREFIX
from oauthvault.service.problems import for_vault_error, problem_response
from oauthvault.vault import AsyncOAuthTokenCache
from oauthvault.vault.results import ApiAccess

__all__ = ["MAX_REPLAY_BODY", "ProxyClients", "ProxySettings", "create_proxy_router"]

logger = logging.getLogger("oauthvault.proxy")

#: Request bodies up to this size are kept, so a request can be sent again (after a 401 or
#: a 429); a larger one streams through once.
MAX_REPLAY_BODY = 1_048_576
_CONNECTION_HEADERS = ("oauthvault-provider", "oauthvault-workspace-id", "oauthvault-actor-id")
# RFC 9110 §7.6.1, and the proxy-era names still seen.
_HOP_BY_HOP = frozenset(
    """connection keep-alive proxy-authenticate proxy-authorization proxy-connection te
    trailer transfer-encoding upgrade""".split()
)
_NOT_FORWARDED = _HOP_BY_HOP | {"authorization", "cookie", "host", "content-length", "expect"}
_NOT_RETURNED = _HOP_BY_HOP | {"set-cookie", "content-length"}
_IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
_MAX_REDIRECTS = 5
ERROR_HEADER = "Oauthvault-Error"
RETRY_AFTER_HEADER = "Oauthvault-Retry-After"


@dataclass(frozen=True, slots=True)
class ProxySettings:
    """How long to wait and how often to try again (from :class:`~oauthvault.Settings`)."""

    connect_timeout: float = 10.0
    read_timeout: float = 120.0
    total_timeout: float = 600.0
    retry_after_cap: float = 5.0
    retries: int = 2

    @classmethod
    def of(cls, settings: Settings) -> ProxySettings:
        return cls(
            settings.proxy_connect_timeout,
            settings.proxy_read_timeout,
            settings.proxy_total_timeout,
            settings.proxy_retry_after_cap,
            settings.proxy_retries,
        )


class ProxyClients:
    """The two httpx clients of the proxy: public addresses only, and (for an app's loopback
    test double) loopback too. Made on first use, closed with :meth:`aclose`."""

    def __init__(self, settings: ProxySettings) -> None:
        self.settings = settings
        self._clients: dict[bool, httpx.AsyncClient] = {}

    def client(self, loopback: bool) -> httpx.AsyncClient:
        client = self._clients.get(loopback)
        if client is None:
            timeout = httpx.Timeout(
                self.settings.read_timeout,
                connect=self.settings.connect_timeout,
                pool=self.settings.connect_timeout,
            )
            client = httpx.AsyncClient(
                transport=AsyncGuardedTransport(allow_loopback=loopback),
                timeout=timeout,
                follow_redirects=False,
                trust_env=False,
            )
            self._clients[loopback] = client
        return client

    async def aclose(self) -> None:
        for client in self._clients.values():
            await client.aclose()
        self._clients.clear()


def _vault_problem(status: int, code: str, detail: str, **extra: object) -> Response:
    response = problem_response(status, code, detail, **extra)
    response.headers[ERROR_HEADER] = code
    return response


def _vault_error(error: VaultError) -> Response:
    response = for_vault_error(error)
    code = json.loads(bytes(response.body)).get("code", "vault_error")
    response.headers[ERROR_HEADER] = str(code)
    return response


def _forwarded_headers(request: Request) -> list[tuple[str, str]]:
    listed = {
        name.strip().lower()
        for value in request.headers.getlist("connection")
        for name in value.split(",")
    }
    kept = []
    for name, value in request.headers.items():
        lower = name.lower()
        if lower in _NOT_FORWARDED or lower in listed or lower.startswith("oauthvault-"):
            continue
        kept.append((name, value))
    return kept


def _returned_headers(upstream: httpx.Response) -> dict[str, str]:
    listed = {
        name.strip().lower()
        for value in upstream.headers.get_list("connection")
        for name in value.split(",")
    }
    headers: dict[str, str] = {}
    for name, value in upstream.headers.multi_items():
        lower = name.lower()
        if lower in _NOT_RETURNED or lower in listed:
            continue
        headers[name] = value
    length = upstream.headers.get("content-length")
    if length is not None:  # the raw bytes pass untouched: their length holds
        headers["content-length"] = length
    return headers


def _with_query(url: str, query: dict[str, str]) -> str:
    if not query:
        return url
    return url + ("&" if urlsplit(url).query else "?") + urlencode(query)


def create_proxy_router(
    vault: AsyncOAuthTokenCache,
    clients: ProxyClients,
    latency: Histogram | None = None,
) -> APIRouter:
    """The ``/v1/proxy/{path}`` route (see the module docstring)."""
    router = APIRouter(tags=["API proxy"])
    settings = clients.settings

    @router.api_route(
        PROXY_PREFIX + "{path:path}",
        methods=_METHODS,
        summary="Send a request to the connection's provider API, credential injected",
        include_in_schema=False,  # the answers are the provider's own: README documents it
    )
    async def proxy(request: Request, path: str) -> Response:
        started = time.perf_counter()
        key = await require_api_key(request)
        names = [request.headers.get(header, "") for header in _CONNECTION_HEADERS]
        if not all(names):
            return _vault_problem(
                400,
                "missing_connection",
                "name the connection in Oauthvault-Provider, Oauthvault-Workspace-Id and "
                "Oauthvault-Actor-Id",
            )
        provider, workspace_id, actor_id = names
        client_host = request.client.host if request.client is not None else None
        try:
            TokenKey(provider, workspace_id, actor_id)
            if not key.allows(workspace_id):
                return _vault_problem(403, "forbidden", "this API key may not use that workspace")
            access = await vault.api_access(
                provider, workspace_id, actor_id, caller=key.name, source=client_host
            )
        except TokenNotFound:
            return _vault_problem(404, "not_found", "no such connection")
        except ReauthorizationRequired as error:
            return _vault_problem(
                409,
                "reauthorization_required",
                "the connection needs a reconnect",
                error=error.error,
            )
        except TargetRefused as error:  # the filled base URL itself: the configuration's
            logger.error("proxy %s: the API base URL cannot be used (%s)", provider, error.code)
            return _vault_problem(500, "config_error", "the provider's API base URL is unusable")
        except VaultError as error:
            return _vault_error(error)
        raw_path: bytes = request.scope.get("raw_path") or request.scope["path"].encode()
        tail = raw_path[len(PROXY_PREFIX) :]
        query: bytes = request.scope.get("query_string", b"")
        try:
            url = _with_query(build_url(access.target, tail, query), dict(access.placement.query))
        except TargetRefused as error:
            return _vault_problem(400, "target_refused", error.detail, reason=error.code)
        body: bytes | AsyncIterator[bytes] | None = None
        replayable = True
        length = request.headers.get("content-length")
        if request.method in ("GET", "HEAD", "OPTIONS") and length in (None, "0"):
            body = None
        elif length is not None and length.isdigit() and int(length) <= MAX_REPLAY_BODY:
            body = await request.body()
        else:
            body, replayable = request.stream(), False
        method = request.method
        retry_safe = method in _IDEMPOTENT or "idempotency-key" in request.headers
        forwarded = _forwarded_headers(request)
        ids = (provider, workspace_id, actor_id)
        renewed = False
        attempts = 0
        deadline = started + settings.total_timeout
        while True:
            client = clients.client(access.target.loopback)
            headers = outgoing_headers(forwarded, access.target.headers, access.placement.headers)
            try:
                upstream = await _send(client, method, url, headers, body, access, deadline)
            except _RedirectRefused as refused:
                return _vault_problem(502, "redirect_refused", str(refused))
            except AddressRefused as error:
                logger.warning("proxy %s: %s", provider, error)
                return _vault_problem(
                    502, "host_refused", f"{error.host} does not resolve to a public address"
                )
            except httpx.TimeoutException:
                return _vault_problem(
                    504, "upstream_timeout", "the provider did not answer in time"
                )
            except httpx.TransportError as error:
                return _vault_problem(
                    502,
                    "upstream_unreachable",
                    f"the provider could not be reached ({type(error).__name__})",
                )
            status = upstream.status_code
            if status == 401 and access.placement.renewable and replayable and not renewed:
                await upstream.aclose()
                renewed = True
                try:
                    access = await vault.api_access_renewed(
                        *ids, access, caller=key.name, source=client_host
                    )
                except VaultError as error:
                    return _vault_error(error)
                url = _with_query(
                    build_url(access.target, tail, query), dict(access.placement.query)
                )
                continue
            if status in (401, 403) and not access.placement.renewable:
                try:
                    await vault.verify_credentials(*ids)
                except VaultError as error:
                    logger.info(
                        "proxy %s: verification after %d failed: %s", provider, status, error
                    )
            if status in (429, 503):
                wait = retry_wait(
                    status, upstream.headers, access.target.rate_limit_reset, datetime.now(UTC)
                )
                can_retry = replayable and retry_safe and attempts < settings.retries
                if wait is not None and wait <= settings.retry_after_cap and can_retry:
                    await upstream.aclose()
                    attempts += 1
                    await asyncio.sleep(wait + random.uniform(0, 0.25 * (wait or 0.1)))  # noqa: S311
                    continue
                answer = _passed(upstream)
                if wait is not None:
                    answer.headers[RETRY_AFTER_HEADER] = str(int(wait + 0.999))
                _observe(latency, provider, status, started, method, url)
                return answer
            _observe(latency, provider, status, started, method, url)
            return _passed(upstream)

    return router


class _RedirectRefused(Exception):
    """A redirect to a host the provider does not own."""


async def _send(
    client: httpx.AsyncClient,
    method: str,
    url: str,
    headers: list[tuple[str, str]],
    body: bytes | AsyncIterator[bytes] | None,
    access: ApiAccess,
    deadline: float,
) -> httpx.Response:
    """Send, following redirects (GET and HEAD, only to hosts the provider owns)."""
    for _ in range(_MAX_REDIRECTS + 1):
        request = client.build_request(method, url, headers=headers, content=body)
        upstream = await asyncio.wait_for(
            client.send(request, stream=True), timeout=max(0.1, deadline - time.perf_counter())
        )
        location = upstream.headers.get("location")
        if not upstream.is_redirect or location is None or method not in ("GET", "HEAD"):
            return upstream
        followed = allows_redirect(access.target, location, url)
        await upstream.aclose()
        if followed is None:
            raise _RedirectRefused("the provider redirected to a host it does not own")
        url = followed
    raise _RedirectRefused("too many redirects")


def _passed(upstream: httpx.Response) -> Response:
    """The provider's answer, streamed as it comes (its bytes untouched)."""

    async def body() -> AsyncIterator[bytes]:
        try:
            async for chunk in upstream.aiter_raw():
                yield chunk
        finally:
            await upstream.aclose()

    return StreamingResponse(
        body(),
        status_code=upstream.status_code,
        headers=_returned_headers(upstream),
        background=BackgroundTask(upstream.aclose),
    )


def _observe(
    latency: Histogram | None, provider: str, status: int, started: float, method: str, url: str
) -> None:
    seconds = time.perf_counter() - started
    if latency is not None:
        latency.labels(provider, f"{status // 100}xx").observe(seconds)
    parts = urlsplit(url)
    logger.info(
        "proxied %s %s%s -> %d in %.3f s", method, parts.hostname, parts.path, status, seconds
    )
