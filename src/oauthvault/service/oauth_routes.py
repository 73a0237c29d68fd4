"""Browser endpoints of the connect flow, as a router a user can mount in their own app.

``/oauth/{provider}/connect`` (identity from the host app's own auth, via a hook) or
``/oauth/{provider}/authorize?link=…`` (identity from a connect link) set the browser
binding cookie and send the browser to the provider; when the provider needs a connection
parameter nobody gave yet (a Shopify shop), a form asks the end user for it first.
``/oauth/{provider}/callback`` checks state and binding, redeems the code, stores the
tokens and sends the browser back: to the return URL, or to ``/oauth/{provider}/result``,
a page saying how it ended, so no code or state stays in the address bar. Every answer a
browser can land on is a page (:mod:`oauthvault.service.outcomes` says what it tells).
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, replace
from time import monotonic
from urllib.parse import urlencode, urlsplit, urlunsplit

from fastapi import APIRouter, Request
from starlette.responses import RedirectResponse, Response

from oauthvault.connect.flow import HELD_CALLBACK_TTL, AsyncConnector
from oauthvault.errors import StorageUnavailable, VaultError
from oauthvault.failures import FailureKind, classify
from oauthvault.providers.params import ConnectionParam
from oauthvault.service.callback_budget import (
    DEFAULT_HELD_CALLBACKS_PER_ADDRESS,
    DEFAULT_HELD_CALLBACKS_TOTAL,
    CallbackBudget,
)
from oauthvault.service.forms import FormError, read_form
from oauthvault.service.links import ConnectLink, ConnectLinks
from oauthvault.service.outcomes import (
    OUTCOMES,
    outcome_of_callback,
    outcome_of_finish,
    outcome_of_start,
)
from oauthvault.service.pages import Pages
from oauthvault.service.returns import ReturnUrlPolicy

__all__ = [
    "BINDING_COOKIE",
    "OUTCOME_COOKIE",
    "Identity",
    "IdentityResolver",
    "create_oauth_router",
]

logger = logging.getLogger("oauthvault.service")

BINDING_COOKIE = "oauthvault_binding"
#: How the last connect flow in this browser ended (``<provider>.<outcome code>``, nothing
#: secret), for the result page the callback redirects to.
OUTCOME_COOKIE = "oauthvault_outcome"
_OUTCOME_MAX_AGE = 600
_MAX_FORM = 65_536  # bytes of a posted form (a posted callback's id_token is a few kilobytes)


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


def _unexpected(stage: str, provider: str, error: VaultError) -> str:
    """Log a failure the stage does not expect; it is answered as ``invalid_input``."""
    logger.warning("%s for %s failed: %s", stage, provider, type(error).__name__)
    return "invalid_input"


_PARAMS_FORM = {
    "required": True,
    "content": {
        "application/x-www-form-urlencoded": {
            "schema": {
                "type": "object",
                "required": ["link"],
                "properties": {"link": {"type": "string"}},
                "additionalProperties": {"type": "string"},
            }
        }
    },
}


@dataclass(frozen=True, slots=True)
class _Field:
    name: str
    label: str
    example: str | None
    value: str
    error: str | None


def create_oauth_router(
    connector: AsyncConnector,
    *,
    public_url: str,
    return_urls: ReturnUrlPolicy,
    resolve_identity: IdentityResolver | None = None,
    links: ConnectLinks | None = None,
    pages: Pages | None = None,
    held_callbacks: CallbackBudget | None = None,
) -> APIRouter:
    """The connect-flow routes. ``public_url`` is where this router is reachable from the
    browser (callback URLs are built from it); give ``resolve_identity`` to offer
    ``/oauth/{provider}/connect`` and ``links`` to offer ``/oauth/{provider}/authorize``
    (and the form asking for a missing connection parameter); ``pages`` carries the
    branding of the pages; ``held_callbacks`` bounds the callbacks providers POST that are
    kept at once (the defaults of :mod:`~oauthvault.service.callback_budget` without it)."""
    router = APIRouter(tags=["connect flow (browser)"])
    base = public_url.rstrip("/")
    secure = public_url.startswith("https://")
    shown = pages or Pages()
    held_budget = held_callbacks or CallbackBudget(
        DEFAULT_HELD_CALLBACKS_PER_ADDRESS, DEFAULT_HELD_CALLBACKS_TOTAL, HELD_CALLBACK_TTL
    )

    def callback_url(provider: str) -> str:
        return f"{base}/oauth/{provider}/callback"

    def outcome_page(
        code: str, provider: str, *, return_url: str | None = None, status: int | None = None
    ) -> Response:
        outcome = OUTCOMES[code]
        product = shown.branding.product_name
        name = connector.display_name(provider) if code != "unknown_provider" else ""
        title, message, advice = outcome.words(name, product)
        return shown.render(
            "connect/outcome.html",
            status or outcome.status,
            title=title,
            message=message,
            advice=advice,
            tone=outcome.tone,
            code=None if code in ("connected", "no_outcome") else code,
            return_url=return_url,
        )

    def error_page(error: VaultError, provider: str, return_url: str | None = None) -> Response:
        """The page for an error starting a flow (never a traceback, never JSON)."""
        failure = classify(error)
        if failure.provider_error is not None:  # discovery failed: the provider did not answer
            logger.info("connect flow for %s could not start: %s", provider, failure.provider_error)
        code = outcome_of_start(failure) or _unexpected("connect flow", provider, error)
        if code == "unknown_provider":
            return outcome_page(code, provider)
        return outcome_page(code, provider, return_url=return_url)

    def finished(provider: str, code: str) -> Response:
        """Off the callback URL (its code and state) to the result page."""
        response = RedirectResponse(
            f"{base}/oauth/{provider}/result",
            status_code=303,
            headers={"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"},
        )
        response.set_cookie(
            OUTCOME_COOKIE,
            f"{provider}.{code}",  # the result page of another provider shows nothing
            max_age=_OUTCOME_MAX_AGE,
            path="/oauth/",
            httponly=True,
            secure=secure,
            samesite="lax",
        )
        return response

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

    async def ask_for_params(
        link: ConnectLink,
        missing: tuple[ConnectionParam, ...],
        given: Mapping[str, str],
        errors: Mapping[str, str],
        status: int = 200,
    ) -> Response:
        """The form asking for ``missing``, under a new one-time link for the same flow."""
        assert links is not None  # noqa: S101 - only offered with links
        token, _ = await links.create(link)
        config = await connector.provider(link.provider)
        endpoint = config.spec.authorization_endpoint if config.spec else "https:"
        fields = [
            _Field(
                param.name,
                param.label,
                param.example,
                given.get(param.name, ""),
                errors.get(param.name),
            )
            for param in missing
        ]
        return shown.render(
            "connect/params.html",
            status,
            # The form's answer redirects to the provider, whose host may hold a parameter.
            form_targets=f"'self' {urlsplit(endpoint).scheme or 'https'}:",
            title=f"Connect {connector.display_name(link.provider)}",
            provider_name=connector.display_name(link.provider),
            action=f"{base}/oauth/{link.provider}/authorize",
            link=token,
            fields=fields,
            return_url=link.return_url,
        )

    async def start_link(request: Request, link: ConnectLink) -> Response:
        try:
            missing = await connector.missing_params(link.provider, link.params)
            if missing:
                return await ask_for_params(link, missing, {}, {})
            return await begin(
                request,
                link.provider,
                link.workspace_id,
                link.actor_id,
                link.return_url,
                link.params,
                link.scopes,
            )
        except VaultError as error:
            return error_page(error, link.provider, link.return_url)

    if resolve_identity is not None:
        resolver = resolve_identity

        @router.get("/oauth/{provider}/connect", summary="Start connecting (host app's user)")
        async def connect(
            request: Request, provider: str, return_url: str | None = None
        ) -> Response:
            if return_url is not None and not return_urls.allows(return_url):
                return outcome_page("invalid_return_url", provider)
            if provider not in connector.provider_names:
                return outcome_page("unknown_provider", provider)
            identity = await resolver(request)
            if links is not None:  # through a link, so a missing parameter can be asked for
                link = ConnectLink(provider, identity.workspace_id, identity.actor_id, return_url)
                return await start_link(request, link)
            try:
                return await begin(
                    request, provider, identity.workspace_id, identity.actor_id, return_url
                )
            except VaultError as error:  # the host app need not install our handlers
                return error_page(error, provider, return_url)

    if links is not None:
        link_store = links

        @router.get("/oauth/{provider}/authorize", summary="Start connecting (connect link)")
        async def authorize(request: Request, provider: str, link: str = "") -> Response:
            if provider not in connector.provider_names:
                return outcome_page("unknown_provider", provider)
            try:
                found = await link_store.take(link)
            except StorageUnavailable:
                return outcome_page("unavailable", provider)
            if found is None or found.provider != provider:
                return outcome_page("link_expired", provider)
            return await start_link(request, found)

        @router.post(
            "/oauth/{provider}/authorize",
            summary="The end user's answer to the connection-parameter form",
            openapi_extra={"requestBody": _PARAMS_FORM},
        )
        async def authorize_with_params(request: Request, provider: str) -> Response:
            if provider not in connector.provider_names:
                return outcome_page("unknown_provider", provider)
            try:
                form = await read_form(request, _MAX_FORM)
            except FormError as error:
                return outcome_page("invalid_input", provider, status=error.status)
            try:
                found = await link_store.take(form.get("link", ""))
            except StorageUnavailable:
                return outcome_page("unavailable", provider)
            if found is None or found.provider != provider:
                return outcome_page("link_expired", provider)
            try:
                missing = await connector.missing_params(provider, found.params)
                given = {p.name: form.get(p.name, "").strip() for p in missing}
                errors = {}
                for param in missing:
                    if not param.accepts(given[param.name]):
                        example = f" (for example {param.example})" if param.example else ""
                        errors[param.name] = f"Enter a valid {param.label}{example}."
                if errors:
                    return await ask_for_params(found, missing, given, errors, status=422)
                return await start_link(request, replace(found, params={**found.params, **given}))
            except VaultError as error:
                return error_page(error, provider, found.return_url)

    @router.post(
        "/oauth/{provider}/callback",
        summary="The provider posts the callback here (response_mode=form_post)",
    )
    async def posted_callback(request: Request, provider: str) -> Response:
        # The POST is cross-site, so it carries no binding cookie: keep its fields under a
        # one-time handle and let the browser GET them back, cookie and all. Anyone can
        # post here: only a form_post provider's expected fields are kept, and only so
        # many callbacks per client address and in total.
        if provider not in connector.provider_names:
            return outcome_page("unknown_provider", provider)
        try:
            fields = await read_form(request, _MAX_FORM)
        except FormError as error:
            return outcome_page("invalid_input", provider, status=error.status)
        try:
            kept = await connector.posted_callback_fields(provider, fields)
            address = request.client.host if request.client is not None else ""
            if not held_budget.admit(address, monotonic()):
                logger.info("posted callback for %s refused: too many held", provider)
                page = outcome_page("unavailable", provider, status=429)
                page.headers["Retry-After"] = str(HELD_CALLBACK_TTL)
                return page
            handle = await connector.hold_callback(kept)
        except VaultError as error:
            return error_page(error, provider)
        url = f"{base}/oauth/{provider}/callback?{urlencode({'resume': handle})}"
        return RedirectResponse(url, status_code=303, headers={"Cache-Control": "no-store"})

    @router.get("/oauth/{provider}/callback", summary="The provider sends the browser here")
    async def callback(request: Request, provider: str) -> Response:
        if provider not in connector.provider_names:  # no flow of ours: nothing to hide
            return outcome_page("unknown_provider", provider)
        params = {key: value for key, value in request.query_params.items()}
        try:
            if "resume" in params:
                held = await connector.take_held_callback(params["resume"])
                if held is None:
                    return finished(provider, "sign_in_expired")
                params = held
            pending = await connector.take_state(
                provider, params, binding=request.cookies.get(BINDING_COOKIE)
            )
        except VaultError as error:
            failure = classify(error)
            if failure.kind is FailureKind.INVALID_STATE:
                logger.info("rejected callback for %s: %s", provider, error)
            code = outcome_of_callback(failure) or _unexpected("callback", provider, error)
            return finished(provider, code)
        try:
            await connector.finish(pending, params)
            code = "connected"
        except VaultError as error:
            failure = classify(error)
            code = outcome_of_finish(failure) or _unexpected("connect flow", provider, error)
            if failure.provider_error is not None:
                logger.info("connect flow for %s ended with %s", provider, code)
        if pending.return_url is not None:
            outcome = {"oauthvault_status": "connected", "oauthvault_provider": provider}
            if code != "connected":
                outcome = {**outcome, "oauthvault_status": "error", "oauthvault_error": code}
            return RedirectResponse(_with_query(pending.return_url, **outcome), status_code=303)
        return finished(provider, code)

    @router.get("/oauth/{provider}/result", summary="How the last connect flow here ended")
    async def result(request: Request, provider: str) -> Response:
        for_provider, _, code = request.cookies.get(OUTCOME_COOKIE, "").rpartition(".")
        if for_provider != provider or code not in OUTCOMES:
            code = "no_outcome"
        if provider not in connector.provider_names:
            code = "unknown_provider"
        return outcome_page(code, provider)

    return router
