"""The library client: an httpx client bound to one connection's provider API, following
the API proxy's rules in the caller's own process (``vault.http_client(...)``).

:class:`AsyncApiClient` (this module) is the hand-written source; ``ApiClient``
(:mod:`oauthvault.vault.api_client`) is generated from it by ``scripts/async_to_sync.py``.

- **Where**: the client's ``base_url`` is the connection's API base URL
  (:meth:`~oauthvault.AsyncOAuthTokenCache.api_access`). Every request's URL is checked
  before anything is sent (:func:`oauthvault.providers.api_targets.request_url`): a
  relative URL (``/gmail/v1/users/me``, leading ``/`` or not) lies below the base URL and
  passes the proxy's path rules; an absolute one must be on the base URL's own scheme,
  host and port. Otherwise :class:`~oauthvault.providers.api_targets.TargetRefused` is
  raised (``//evil.example/x``, ``../x``, ``http://evil.example/``). The transport reaches
  public addresses only (:mod:`oauthvault.oauth.guarded_transport`; loopback only for an
  http loopback base URL, an app's test double).
- **What**: the credential is placed on every request (a fresh token for OAuth and minted
  kinds, as :meth:`~oauthvault.AsyncOAuthTokenCache.request_auth`), by an ``httpx.Auth``
  flow, :class:`AsyncApiAuth`.
- **Answers** (the rules of :mod:`oauthvault.oauth.api_calls`): a 401 to a renewable
  credential is renewed once through the refresh lease and the request sent again (when
  its body can be: none, or bytes; not a streamed one); a 401 or 403 to a static
  credential is checked with its verification request; a 429 or 503 whose
  ``Retry-After`` is at most the cap is waited out and the request sent again (idempotent
  methods or an ``Idempotency-Key``, ``retries`` times at most); otherwise the answer is
  returned as it is.
- **Redirects** are never followed by httpx (``follow_redirects`` is always false, whatever
  a call asks): the flow follows those of GET and HEAD (five at most) to the provider's own
  hosts (:func:`~oauthvault.providers.api_targets.allows_redirect`), the credential placed
  again, and raises ``TargetRefused("redirect_refused", ...)`` for any other; other
  methods' redirects are returned unfollowed.

A call that passes an ``auth`` of its own replaces the flow: nothing of the connection's
credential is sent then.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import httpx

from oauthvault.errors import VaultError
from oauthvault.oauth.api_calls import (
    MAX_REDIRECTS,
    RETRY_STATUSES,
    apply_placement,
    follows_redirect,
    may_renew,
    may_retry,
    retry_safe,
    retry_sleep,
    should_verify,
)
from oauthvault.oauth.guarded_transport import AsyncGuardedTransport
from oauthvault.providers.api_targets import TargetRefused, allows_redirect, request_url
from oauthvault.providers.rate_limits import retry_wait
from oauthvault.vault.results import ApiAccess

if TYPE_CHECKING:
    from oauthvault.vault.credentials_async import AsyncCredentialVault

__all__ = ["AsyncApiAuth", "AsyncApiClient"]

logger = logging.getLogger("oauthvault.http_client")

# Not sent on when a redirect is followed: the HTTP client sets them for the new request.
_NOT_REDIRECTED = ("host", "content-length", "transfer-encoding", "content-type")


class AsyncApiAuth(httpx.Auth):
    """The ``httpx.Auth`` flow of a library client (see the module docstring): ``access``
    is the connection's latest :class:`~oauthvault.vault.results.ApiAccess`."""

    def __init__(
        self,
        vault: AsyncCredentialVault,
        ids: tuple[str, str, str],
        access: ApiAccess,
        *,
        retry_after_cap: float,
        retries: int,
        caller: str | None = None,
        source: str | None = None,
    ) -> None:
        self.access = access
        self._vault = vault
        self._ids = ids
        self._cap = retry_after_cap
        self._retries = retries
        self._caller = caller
        self._source = source

    async def async_auth_flow(
        self, request: httpx.Request
    ) -> AsyncGenerator[httpx.Request, httpx.Response]:
        access = await self._vault.api_access(*self._ids, caller=self._caller, source=self._source)
        self.access = access
        request_url(access.target, str(request.url))  # raises before anything is sent
        replayable = isinstance(request.stream, httpx.ByteStream)
        safe = retry_safe(request.method, request.headers.keys())
        renewed = False
        attempts = redirects = 0
        while True:
            apply_placement(request, access.placement)
            response = yield request
            status = response.status_code
            renewable = access.placement.renewable
            if may_renew(status, renewable=renewable, replayable=replayable, renewed=renewed):
                renewed = True
                access = await self._vault.api_access_renewed(
                    *self._ids, access, caller=self._caller, source=self._source
                )
                self.access = access
                continue
            if should_verify(status, renewable=renewable):
                try:
                    await self._vault.verify_credentials(*self._ids)
                except VaultError as error:
                    logger.info("%s: verification after %d failed: %s", self._ids[0], status, error)
            if status in RETRY_STATUSES:
                wait = retry_wait(
                    status, response.headers, access.target.rate_limit_reset, datetime.now(UTC)
                )
                if wait is not None and may_retry(
                    status,
                    wait,
                    safe=safe,
                    replayable=replayable,
                    attempts=attempts,
                    retries=self._retries,
                    cap=self._cap,
                ):
                    attempts += 1
                    await asyncio.sleep(retry_sleep(wait))
                    continue
                return
            location = response.headers.get("location")
            if location is None or not follows_redirect(request.method, status, location):
                return
            followed = allows_redirect(access.target, location, str(request.url))
            if followed is None:
                raise TargetRefused(
                    "redirect_refused", "the provider redirected to a host it does not own"
                )
            redirects += 1
            if redirects > MAX_REDIRECTS:
                raise TargetRefused("redirect_refused", "too many redirects")
            headers = request.headers.copy()
            for name in _NOT_REDIRECTED:
                headers.pop(name, None)
            request = httpx.Request(
                request.method, followed, headers=headers, extensions=request.extensions
            )

    def __repr__(self) -> str:
        return f"{type(self).__name__}{self._ids!r}"


class AsyncApiClient(httpx.AsyncClient):
    """An ``httpx.AsyncClient`` bound to a connection's API (see the module docstring):
    made by :meth:`~oauthvault.AsyncOAuthTokenCache.http_client`."""

    def __init__(self, auth: AsyncApiAuth, *, timeout: httpx.Timeout) -> None:
        target = auth.access.target
        super().__init__(
            auth=auth,
            base_url=target.base_url,
            transport=AsyncGuardedTransport(allow_loopback=target.loopback),
            timeout=timeout,
            follow_redirects=False,
            trust_env=False,
        )
        self._api_auth = auth

    def build_request(self, method: str, url: httpx.URL | str, **options: Any) -> httpx.Request:
        """httpx's, after checking the caller's ``url`` as given (before httpx merges it
        with the base URL and drops its dot segments).

        Raises:
            TargetRefused: the URL may not be sent to (see the module docstring).
        """
        request_url(self._api_auth.access.target, str(httpx.URL(url)))
        return super().build_request(method, url, **options)

    async def send(
        self,
        request: httpx.Request,
        *,
        stream: bool = False,
        auth: httpx.Auth | Any = httpx.USE_CLIENT_DEFAULT,
        follow_redirects: bool | Any = httpx.USE_CLIENT_DEFAULT,
    ) -> httpx.Response:
        """httpx's, with ``follow_redirects`` always false: the auth flow follows redirects
        itself, to the provider's own hosts only."""
        return await super().send(request, stream=stream, auth=auth, follow_redirects=False)
