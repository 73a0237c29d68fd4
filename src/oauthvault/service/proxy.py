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
- **Another host**: ``Oauthvault-Api-Host`` names another of the provider's API hosts
  (its ``api_hosts``: Box's upload host, Dropbox's content host) for the request: its
  path then starts at that host's root; a host the provider does not own is
  ``target_refused``.
- **Redirects** are followed (GET and HEAD, five at most) only to a host the provider owns;
  another is refused (``502 redirect_refused``).
- **Answers**: the provider's own answer passes through unchanged (status, safe headers,
  body streamed); the vault's own refusals are ``application/problem+json`` with an
  ``Oauthvault-Error`` header naming their code, so "the provider said 404" and "the vault
  has no such connection" never look alike.
- **Audited**: every call naming a connection (valid ids) goes to the audit trail (outcome
  ``proxied``): the API key's name, the connection, the method, the provider's host and
  path (never the query), the status the caller got and the vault's code when the vault
  refused, the milliseconds to the answer's last byte and the bytes of both bodies. It is
  queued when the answer's body has been streamed (the bytes are known then): no call waits
  for the database.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import urlsplit

import anyio
import httpx
from fastapi import APIRouter, Request
from prometheus_client import Histogram
from starlette.background import BackgroundTask
from starlette.responses import Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from oauthvault.audit import AuditTrail, ProxiedCall
from oauthvault.config import Settings
from oauthvault.errors import (
    ReauthorizationRequired,
    TokenNotFound,
    VaultError,
)
from oauthvault.models import TokenKey
from oauthvault.oauth.api_calls import (
    MAX_REDIRECTS,
    RETRY_STATUSES,
    follows_redirect,
    forwarded_headers,
    may_renew,
    may_retry,
    retry_safe,
    retry_sleep,
    returned_headers,
    should_verify,
    with_query,
)
from oauthvault.oauth.guarded_transport import AddressRefused, AsyncGuardedTransport
from oauthvault.providers.api_targets import TargetRefused, allows_redirect, build_url
from oauthvault.providers.rate_limits import outgoing_headers, retry_wait
from oauthvault.service.api import require_api_key
from oauthvault.service.apikeys import ApiKey
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
_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
ERROR_HEADER = "Oauthvault-Error"
#: Names another of the provider's API hosts (an ``api_hosts`` entry: an upload or content
#: host) for the request; the base URL's host without it.
API_HOST_HEADER = "Oauthvault-Api-Host"
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


@dataclass(slots=True)
class _Call:
    """One proxied call as the audit trail will have it, filled in as it goes; queued once
    by :meth:`finish` (the first call wins: the body's end, or its abandonment)."""

    trail: AuditTrail | None
    caller: str
    source: str | None
    method: str
    started: float
    path: str
    ids: tuple[str, str, str] | None = None  # set once the connection's ids are valid
    host: str | None = None
    request_bytes: int = 0
    streaming: bool = False
    done: bool = False

    def target(self, url: str) -> None:
        parts = urlsplit(url)
        self.host, self.path = parts.hostname, parts.path  # never the query

    async def counted(self, stream: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
        async for chunk in stream:
            self.request_bytes += len(chunk)
            yield chunk

    def finish(self, status: int, error: str | None, response_bytes: int) -> None:
        if self.done:
            return
        self.done = True
        if self.trail is None or self.ids is None:  # auditing off; no connection named
            return
        milliseconds = round((time.perf_counter() - self.started) * 1000)
        call = ProxiedCall(
            self.method,
            self.host,
            self.path,
            status,
            error,
            milliseconds,
            response_bytes,
            self.request_bytes,
        )
        self.trail.record_call(self.caller, *self.ids, call, source=self.source)


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
        raw_path: bytes = request.scope.get("raw_path") or request.scope["path"].encode()
        call = _Call(
            vault.audit_trail,
            key.name,
            request.client.host if request.client is not None else None,
            request.method,
            started,
            "/" + raw_path[len(PROXY_PREFIX) :].decode("latin-1"),
        )
        try:
            response = await forward(request, key, call)
        except asyncio.CancelledError:
            call.finish(499, "client_disconnected", 0)
            raise
        except Exception:
            call.finish(500, "internal_error", 0)
            raise
        if not call.streaming:
            call.finish(
                response.status_code, response.headers.get(ERROR_HEADER), len(response.body)
            )
        return response

    async def forward(request: Request, key: ApiKey, call: _Call) -> Response:
        started = call.started
        names = [request.headers.get(header, "") for header in _CONNECTION_HEADERS]
        if not all(names):
            return _vault_problem(
                400,
                "missing_connection",
                "name the connection in Oauthvault-Provider, Oauthvault-Workspace-Id and "
                "Oauthvault-Actor-Id",
            )
        provider, workspace_id, actor_id = names
        client_host = call.source
        try:
            TokenKey(provider, workspace_id, actor_id)
            call.ids = (provider, workspace_id, actor_id)  # valid: audited from here on
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
        api_host = request.headers.get(API_HOST_HEADER)
        try:
            access = _aimed(access, api_host)
            call.host = urlsplit(access.target.base_url).hostname
            url = with_query(build_url(access.target, tail, query), access.placement.query)
        except TargetRefused as error:
            return _vault_problem(400, "target_refused", error.detail, reason=error.code)
        call.target(url)
        body: bytes | AsyncIterator[bytes] | None = None
        replayable = True
        length = request.headers.get("content-length")
        if request.method in ("GET", "HEAD", "OPTIONS") and length in (None, "0"):
            body = None
        elif length is not None and length.isdigit() and int(length) <= MAX_REPLAY_BODY:
            body = await request.body()
            call.request_bytes = len(body)
        else:
            body, replayable = call.counted(request.stream()), False
        method = request.method
        safe = retry_safe(method, request.headers.keys())
        forwarded = forwarded_headers(request.headers.items())
        if not replayable and length is not None and length.isascii() and length.isdigit():
            # A streamed body keeps the length it was announced with (httpx then sends it
            # as is, not chunked: some APIs take no chunked upload).
            forwarded.append(("Content-Length", length))
        ids = (provider, workspace_id, actor_id)
        renewed = False
        resent = False
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
            except (httpx.TimeoutException, TimeoutError):
                return _vault_problem(
                    504, "upstream_timeout", "the provider did not answer in time"
                )
            except httpx.TransportError as error:
                # A kept-alive connection the provider closed as it was reused, a reset:
                # nothing was answered, so an idempotent request is sent once more.
                if safe and replayable and not resent:
                    resent = True
                    logger.info("proxy %s: sent again after %s", provider, type(error).__name__)
                    continue
                return _vault_problem(
                    502,
                    "upstream_unreachable",
                    f"the provider could not be reached ({type(error).__name__})",
                )
            status = upstream.status_code
            renewable = access.placement.renewable
            if may_renew(status, renewable=renewable, replayable=replayable, renewed=renewed):
                await upstream.aclose()
                renewed = True
                try:
                    access = await vault.api_access_renewed(
                        *ids, access, caller=key.name, source=client_host
                    )
                except VaultError as error:
                    return _vault_error(error)
                access = _aimed(access, api_host)  # checked above: the same host
                url = with_query(build_url(access.target, tail, query), access.placement.query)
                call.target(url)
                continue
            if should_verify(status, renewable=renewable):
                try:
                    await vault.verify_credentials(*ids)
                except VaultError as error:
                    logger.info(
                        "proxy %s: verification after %d failed: %s", provider, status, error
                    )
            if status in RETRY_STATUSES:
                wait = retry_wait(
                    status, upstream.headers, access.target.rate_limit_reset, datetime.now(UTC)
                )
                if wait is not None and may_retry(
                    status,
                    wait,
                    safe=safe,
                    replayable=replayable,
                    attempts=attempts,
                    retries=settings.retries,
                    cap=settings.retry_after_cap,
                ):
                    await upstream.aclose()
                    attempts += 1
                    await asyncio.sleep(retry_sleep(wait))
                    continue
                answer = _passed(upstream, call)
                if wait is not None:
                    answer.headers[RETRY_AFTER_HEADER] = str(int(wait + 0.999))
                _observe(latency, provider, status, started, method, url)
                return answer
            _observe(latency, provider, status, started, method, url)
            return _passed(upstream, call)

    return router


def _aimed(access: ApiAccess, host: str | None) -> ApiAccess:
    """``access`` aimed at another of the provider's hosts, when the caller names one.

    Raises:
        TargetRefused: the provider does not own that host.
    """
    if not host:
        return access
    return dataclasses.replace(access, target=access.target.on_host(host))


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
    for _ in range(MAX_REDIRECTS + 1):
        request = client.build_request(method, url, headers=headers, content=body)
        # A deadline on this task (asyncio.wait_for would make a task per send).
        async with asyncio.timeout(max(0.1, deadline - time.perf_counter())):
            upstream = await client.send(request, stream=True)
        location = upstream.headers.get("location")
        if location is None or not follows_redirect(method, upstream.status_code, location):
            return upstream
        followed = allows_redirect(access.target, location, url)
        await upstream.aclose()
        if followed is None:
            raise _RedirectRefused("the provider redirected to a host it does not own")
        url = followed
    raise _RedirectRefused("too many redirects")


class _CancellableStream(StreamingResponse):
    """A streamed answer that stops (and so closes the provider's answer) as soon as the
    caller goes away: it watches for the disconnect itself, whatever ASGI version the
    server speaks (under 2.4 Starlette would only notice at a failed send, which a server
    may never report, and the provider's whole answer would still be read)."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async with anyio.create_task_group() as group:

            async def stream() -> None:
                try:
                    await self.stream_response(send)
                except OSError:
                    pass  # the caller went away mid-send
                group.cancel_scope.cancel()

            group.start_soon(stream)
            await self.listen_for_disconnect(receive)
            group.cancel_scope.cancel()
        if self.background is not None:
            await self.background()


def _passed(upstream: httpx.Response, call: _Call) -> Response:
    """The provider's answer, streamed as it comes (its bytes untouched), audited once its
    body has been sent (or abandoned: the client went away, the provider broke off)."""
    status = upstream.status_code
    sent = 0

    async def body() -> AsyncIterator[bytes]:
        nonlocal sent
        try:
            async for chunk in upstream.aiter_raw():
                sent += len(chunk)
                yield chunk
        finally:
            call.finish(status, None, sent)
            await upstream.aclose()

    async def after() -> None:  # runs even when the body was never read to its end
        call.finish(status, None, sent)
        await upstream.aclose()

    call.streaming = True
    answer = _CancellableStream(body(), status_code=status, background=BackgroundTask(after))
    # Every header as the provider sent it, a repeated name's values all kept.
    answer.raw_headers = [
        (name.lower().encode("latin-1"), value.encode("latin-1"))
        for name, value in returned_headers(upstream.headers.multi_items())
    ]
    return answer


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
