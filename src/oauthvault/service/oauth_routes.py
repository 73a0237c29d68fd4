"""Browser endpoints of the connect flow, as a router a user can mount in their own app.

``/oauth/{provider}/connect`` (identity from the host app's own auth, via a hook) or
``/oauth/{provider}/authorize?link=…`` (identity from a connect link) set the browser
binding cookie and send the browser to the provider; ``/oauth/{provider}/callback`` checks
state and binding, redeems the code, stores the tokens and sends the browser back.
"""

from __future__ import annotations

import html
import logging
import secrets
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from fastapi import APIRouter, Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from oauthvault.errors import InvalidState, ProviderError, VaultError
from oauthvault.oauth.connect import AsyncConnector
from oauthvault.service.links import ConnectLinks
from oauthvault.service.problems import for_vault_error, problem_response
from oauthvault.service.returns import ReturnUrlPolicy

__all__ = ["BINDING_COOKIE", "Identity", "IdentityResolver", "create_oauth_router"]

logger = logging.getLogger("oauthvault.service")

BINDING_COOKIE = "oauthvault_binding"
_MAX_CALLBACK = 65_536  # bytes of a posted callback (an id_token is a few kilobytes)
# Error codes a provider may send (RFC 6749 §4.1.2.1) or we raise; anything else is
# reported as "provider_error" so the return URL never reflects arbitrary text.
_PASSED_ON = frozenset(
    {
        "access_denied",
        "invalid_request",
        "unauthorized_client",
        "unsupported_response_type",
        "invalid_scope",
        "server_error",
        "temporarily_unavailable",
        "invalid_grant",
        "invalid_client",
        "invalid_issuer",
        "invalid_id_token",
        "interaction_required",
        "login_required",
        "consent_required",
    }
)


@dataclass(frozen=True, slots=True)
class Identity:
    """Who is connecting: the host app resolves it from its own session."""

    workspace_id: str
    actor_id: str


IdentityResolver = Callable[[Request], Awaitable[Identity]]


def _with_query(url: str, **params: str) -> str:
    parts = urlsplit(url)
    query = (parts.query + "&" if parts.query else "") + urlencode(params)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, parts.fragment))


def _page(status: int, title: str, message: str) -> HTMLResponse:
    shown_title, shown_message = html.escape(title), html.escape(message)
    body = (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{shown_title}</title>"
        f"</head><body><h1 id='title'>{shown_title}</h1>"
        f"<p id='message'>{shown_message}</p></body></html>"
    )
    return HTMLResponse(body, status_code=status, headers={"Cache-Control": "no-store"})


def create_oauth_router(
    connector: AsyncConnector,
    *,
    public_url: str,
    return_urls: ReturnUrlPolicy,
    resolve_identity: IdentityResolver | None = None,
    links: ConnectLinks | None = None,
) -> APIRouter:
    """The connect-flow routes. ``public_url`` is where this router is reachable from the
    browser (callback URLs are built from it); give ``resolve_identity`` to offer
    ``/oauth/{provider}/connect`` and ``links`` to offer ``/oauth/{provider}/authorize``."""
    router = APIRouter(tags=["connect flow (browser)"])
    base = public_url.rstrip("/")
    secure = public_url.startswith("https://")

    def callback_url(provider: str) -> str:
        return f"{base}/oauth/{provider}/callback"

    async def begin(
        request: Request,
        provider: str,
        workspace_id: str,
        actor_id: str,
        return_url: str | None,
        params: Mapping[str, str] | None = None,
        scopes: tuple[str, ...] | None = None,
    ) -> Response:
        config = await connector.provider(provider)
        binding = request.cookies.get(BINDING_COOKIE) or secrets.token_urlsafe(32)
        url = await connector.start(
            provider,
            workspace_id,
            actor_id,
            redirect_uri=config.redirect_uri or callback_url(provider),
            binding=binding,
            return_url=return_url,
            params=params,
            scopes=scopes,
        )
        response = RedirectResponse(url, status_code=302, headers={"Cache-Control": "no-store"})
        response.set_cookie(
            BINDING_COOKIE,
            binding,
            max_age=86_400,
            path="/oauth/",
            httponly=True,
            secure=secure,
            samesite="lax",
        )
        return response

    if resolve_identity is not None:
        resolver = resolve_identity

        @router.get("/oauth/{provider}/connect", summary="Start connecting (host app's user)")
        async def connect(
            request: Request, provider: str, return_url: str | None = None
        ) -> Response:
            if return_url is not None and not return_urls.allows(return_url):
                return problem_response(400, "invalid_return_url", "return_url is not allowed")
            identity = await resolver(request)
            try:
                return await begin(
                    request, provider, identity.workspace_id, identity.actor_id, return_url
                )
            except VaultError as error:  # the host app need not install our handlers
                return for_vault_error(error)

    if links is not None:
        link_store = links

        @router.get("/oauth/{provider}/authorize", summary="Start connecting (connect link)")
        async def authorize(request: Request, provider: str, link: str = "") -> Response:
            found = await link_store.take(link)
            if found is None or found.provider != provider:
                return _page(
                    400,
                    "Link expired",
                    "This connect link has expired or was already used. "
                    "Go back to the app and start again.",
                )
            try:
                return await begin(
                    request,
                    provider,
                    found.workspace_id,
                    found.actor_id,
                    found.return_url,
                    found.params,
                    found.scopes,
                )
            except VaultError as error:
                return for_vault_error(error)

    @router.post(
        "/oauth/{provider}/callback",
        summary="The provider posts the callback here (response_mode=form_post)",
    )
    async def posted_callback(request: Request, provider: str) -> Response:
        # The POST is cross-site, so it carries no binding cookie: keep its fields under a
        # one-time handle and let the browser GET them back, cookie and all.
        if provider not in connector.provider_names:
            return problem_response(404, "unknown_provider", "no such provider")
        if "application/x-www-form-urlencoded" not in request.headers.get("content-type", ""):
            return problem_response(415, "unsupported_media_type", "expected a form post")
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > _MAX_CALLBACK:
            return problem_response(413, "payload_too_large", "the callback is too large")
        body = b""
        async for chunk in request.stream():
            body += chunk
            if len(body) > _MAX_CALLBACK:
                return problem_response(413, "payload_too_large", "the callback is too large")
        try:
            fields = dict(parse_qsl(body.decode("utf-8"), keep_blank_values=True))
        except (UnicodeDecodeError, ValueError):
            return problem_response(422, "invalid_request", "the form could not be read")
        try:
            handle = await connector.hold_callback(fields)
        except VaultError as error:
            return for_vault_error(error)
        url = f"{base}/oauth/{provider}/callback?{urlencode({'resume': handle})}"
        return RedirectResponse(url, status_code=303, headers={"Cache-Control": "no-store"})

    @router.get("/oauth/{provider}/callback", summary="The provider sends the browser here")
    async def callback(request: Request, provider: str) -> Response:
        params = {key: value for key, value in request.query_params.items()}
        if "resume" in params:
            held = await connector.take_held_callback(params["resume"])
            if held is None:
                return _page(
                    400,
                    "Connection failed",
                    "This sign-in could not be completed here (expired or already used). "
                    "Go back to the app and start again.",
                )
            params = held
        try:
            pending = await connector.take_state(
                provider, params, binding=request.cookies.get(BINDING_COOKIE)
            )
        except InvalidState as error:
            logger.info("rejected callback for %s: %s", provider, error)
            return _page(
                400,
                "Connection failed",
                "This sign-in could not be completed here (expired, already used, or "
                "started in another browser). Go back to the app and start again.",
            )
        except VaultError as error:
            return for_vault_error(error)
        try:
            await connector.finish(pending, params)
            outcome = {"oauthvault_status": "connected", "oauthvault_provider": provider}
        except ProviderError as error:  # before VaultError: it is one, with a code to pass on
            code = error.error if error.error in _PASSED_ON else "provider_error"
            logger.info("connect flow for %s ended with %s", provider, code)
            outcome = {
                "oauthvault_status": "error",
                "oauthvault_provider": provider,
                "oauthvault_error": code,
            }
        except VaultError as error:
            return for_vault_error(error)
        if pending.return_url is not None:
            return RedirectResponse(_with_query(pending.return_url, **outcome), status_code=303)
        if outcome["oauthvault_status"] == "connected":
            return _page(200, "Connected", f"Your {provider} account is connected.")
        return _page(400, "Connection failed", f"The provider said: {outcome['oauthvault_error']}")

    return router
