"""Browser endpoints of the connect flow, as a router a user can mount in their own app.

``/oauth/{provider}/connect`` (identity from the host app's own auth, via a hook) or
``/oauth/{provider}/authorize?link=…`` (identity from a connect link) set the browser
binding cookie and send the browser to the provider; when the provider needs a connection
parameter nobody gave yet (a Shopify shop), a form asks the end user for it first.
``/oauth/{provider}/callback`` checks state and binding, redeems the code, stores the
tokens and sends the browser back: to the return URL, or to ``/oauth/{provider}/result``,
a page saying how it ended, so no code or state stays in the address bar. Every answer a
browser can land on is a page (:mod:`oauthvault.service.outcomes` says what it tells).

A connect link of a provider that takes a typed credential (an API key: the credential
catalog's ``api_key``, ``basic`` and ``fields`` entries) opens the same way, under the same
one-time and CSRF rules, but its page is a form (:mod:`oauthvault.service.credential_form`)
whose POST stores the credential and ends on the same return URL or result page.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, replace
from time import monotonic
from urllib.parse import urlencode, urlsplit

from fastapi import APIRouter, Request
from starlette.responses import RedirectResponse, Response

from oauthvault.connect.flow import HELD_CALLBACK_TTL, AsyncConnector
from oauthvault.errors import StorageUnavailable, VaultError
from oauthvault.failures import FailureKind, classify
from oauthvault.providers.credential_apps import CredentialApp
from oauthvault.providers.params import ConnectionParam
from oauthvault.service.callback_budget import (
    DEFAULT_HELD_CALLBACKS_PER_ADDRESS,
    DEFAULT_HELD_CALLBACKS_TOTAL,
    CallbackBudget,
)
from oauthvault.service.connect_pages import BINDING_COOKIE, OUTCOME_COOKIE, ConnectPages
from oauthvault.service.credential_form import CredentialForms
from oauthvault.service.forms import FormError, read_form
from oauthvault.service.github_install import GitHubInstalls
from oauthvault.service.links import ConnectLink, ConnectLinks
from oauthvault.service.outcomes import (
    OUTCOMES,
    outcome_of_callback,
    outcome_of_finish,
    outcome_of_start,
)
from oauthvault.service.pages import Pages
from oauthvault.service.returns import ReturnUrlPolicy
from oauthvault.vault import AsyncOAuthTokenCache

__all__ = [
    "BINDING_COOKIE",
    "OUTCOME_COOKIE",
    "Identity",
    "IdentityResolver",
    "create_oauth_router",
]

logger = logging.getLogger("oauthvault.service")

_MAX_FORM = 65_536  # bytes of a posted form (a posted callback's id_token is a few kilobytes)


@dataclass(frozen=True, slots=True)
class Identity:
    """Who is connecting: the host app resolves it from its own session."""

    workspace_id: str
    actor_id: str


IdentityResolver = Callable[[Request], Awaitable[Identity]]


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
                "properties": {
                    "link": {"type": "string", "description": "the page's one-time link"},
                    "browser_secret": {
                        "type": "string",
                        "description": "a host-bound link's secret, posted by the host "
                        "app's page (the link may then be in the query)",
                    },
                },
                # A parameter form's <param>; a credential form's params.<param> and
                # credentials.<field> (never in the query: a credential travels in the body).
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
    credential_vault: AsyncOAuthTokenCache | None = None,
    credential_apps: Mapping[str, CredentialApp] | None = None,
) -> APIRouter:
    """The connect-flow routes. ``public_url`` is where this router is reachable from the
    browser (callback URLs are built from it); give ``resolve_identity`` to offer
    ``/oauth/{provider}/connect`` and ``links`` to offer ``/oauth/{provider}/authorize``
    (and the form asking for a missing connection parameter); ``pages`` carries the
    branding of the pages; ``held_callbacks`` bounds the callbacks providers POST that are
    kept at once (the defaults of :mod:`~oauthvault.service.callback_budget` without it);
    with ``links`` and ``credential_vault`` (where typed credentials are stored), the
    connect link of a credential catalog entry that takes a typed credential opens its
    form (:mod:`~oauthvault.service.credential_form`), and that of a GitHub App configured
    in ``credential_apps`` installs it (:mod:`~oauthvault.service.github_install`)."""
    router = APIRouter(tags=["connect flow (browser)"])
    base = public_url.rstrip("/")
    shown = pages or Pages()
    host_origins = return_urls
    held_budget = held_callbacks or CallbackBudget(
        DEFAULT_HELD_CALLBACKS_PER_ADDRESS, DEFAULT_HELD_CALLBACKS_TOTAL, HELD_CALLBACK_TTL
    )

    def callback_url(provider: str) -> str:
        return f"{base}/oauth/{provider}/callback"

    def form_provider(provider: str) -> bool:
        """Whether ``provider``'s connect link is a credential form (an OAuth app of the
        same name wins)."""
        return (
            forms is not None
            and provider not in connector.provider_names
            and CredentialForms.spec(provider) is not None
        )

    def install_provider(provider: str) -> bool:
        """Whether ``provider``'s connect link installs a GitHub App."""
        return (
            installs is not None
            and provider not in connector.provider_names
            and installs.spec(provider) is not None
        )

    def display_name(provider: str) -> str:
        spec = CredentialForms.spec(provider) if form_provider(provider) else None
        if spec is None and installs is not None and install_provider(provider):
            spec = installs.spec(provider)
        return spec.display_name if spec is not None else connector.display_name(provider)

    def known(provider: str) -> bool:
        return (
            provider in connector.provider_names
            or form_provider(provider)
            or install_provider(provider)
        )

    ends = ConnectPages(shown, public_url, display_name)
    outcome_page = ends.outcome
    forms = (
        CredentialForms(credential_vault, links, ends, public_url=public_url)
        if credential_vault is not None and links is not None
        else None
    )
    installs = (
        GitHubInstalls(
            credential_vault, links, ends, dict(credential_apps or {}), public_url=public_url
        )
        if credential_vault is not None and links is not None
        else None
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

    finished = ends.finished
    bind = ends.bind
    binding_of = ends.binding_of

    async def begin(
        binding: str,
        provider: str,
        workspace_id: str,
        actor_id: str,
        return_url: str | None,
        params: Mapping[str, str] | None = None,
        scopes: tuple[str, ...] | None = None,
    ) -> Response:
        config = await connector.provider(provider)
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
        return bind(response, binding)

    async def form_targets(provider: str) -> str:
        """Where a page's form may go: here, and the provider its answer redirects to
        (whose host may hold a parameter)."""
        config = await connector.provider(provider)
        endpoint = config.spec.authorization_endpoint if config.spec else "https:"
        return f"'self' {urlsplit(endpoint).scheme or 'https'}:"

    async def ask_for_params(
        binding: str,
        link: ConnectLink,
        missing: tuple[ConnectionParam, ...],
        given: Mapping[str, str],
        errors: Mapping[str, str],
        status: int = 200,
    ) -> Response:
        """The form asking for ``missing``, under a new one-time link for the same flow that
        only this browser (its binding cookie) can post back."""
        assert links is not None  # noqa: S101 - only offered with links
        token, _ = await links.create(link, browser=binding)
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
        name = connector.display_name(link.provider)
        page = shown.render(
            "connect/params.html",
            status,
            form_targets=await form_targets(link.provider),
            title=f"Connect {name}",
            provider_name=name,
            workspace_name=link.workspace_name,
            action=f"{base}/oauth/{link.provider}/authorize",
            link=token,
            fields=fields,
            return_url=link.return_url,
        )
        return bind(page, binding)

    async def confirm(binding: str, link: ConnectLink) -> Response:
        """The page asking the end user to go on to the provider: only its POST (with a
        new one-time link only this browser can post) starts the flow."""
        assert links is not None  # noqa: S101 - only offered with links
        token, _ = await links.create(link, browser=binding)
        name = connector.display_name(link.provider)
        page = shown.render(
            "connect/confirm.html",
            form_targets=await form_targets(link.provider),
            title=f"Connect {name}",
            provider_name=name,
            workspace_name=link.workspace_name,
            action=f"{base}/oauth/{link.provider}/authorize",
            link=token,
            return_url=link.return_url,
        )
        return bind(page, binding)

    async def start_link(binding: str, link: ConnectLink, *, confirmed: bool) -> Response:
        """Ask for missing parameters, else ask for confirmation (unless ``confirmed``),
        else go to the provider."""
        try:
            missing = await connector.missing_params(link.provider, link.params)
            if missing:
                return await ask_for_params(binding, link, missing, {}, {})
            if not confirmed:
                return await confirm(binding, link)
            return await begin(
                binding,
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
            binding = binding_of(request)
            if links is not None:  # through a link, so a missing parameter can be asked for
                link = ConnectLink(provider, identity.workspace_id, identity.actor_id, return_url)
                # The host app's own session says who connects: nothing to confirm.
                return await start_link(binding, link, confirmed=True)
            try:
                return await begin(
                    binding, provider, identity.workspace_id, identity.actor_id, return_url
                )
            except VaultError as error:  # the host app need not install our handlers
                return error_page(error, provider, return_url)

    if links is not None:
        link_store = links

        @router.get("/oauth/{provider}/authorize", summary="Open a connect link")
        async def authorize(request: Request, provider: str, link: str = "") -> Response:
            if not known(provider):
                return outcome_page("unknown_provider", provider)
            try:  # kept under its provider: at another provider's URL it stays unused
                found = await link_store.take(link, provider)
            except StorageUnavailable:
                return outcome_page("unavailable", provider)
            if found is None:
                return outcome_page("link_expired", provider)
            if forms is not None and form_provider(provider):
                try:
                    return await forms.show(binding_of(request), found)
                except StorageUnavailable:
                    return outcome_page("unavailable", provider, return_url=found.return_url)
            if installs is not None and install_provider(provider):
                try:
                    return await installs.show(binding_of(request), found)
                except StorageUnavailable:
                    return outcome_page("unavailable", provider, return_url=found.return_url)
            return await start_link(binding_of(request), found, confirmed=False)

        @router.post(
            "/oauth/{provider}/authorize",
            summary="Go on to the provider: the confirmation page, the connection-parameter "
            "form, or the host app's page of a host-bound link; or store the credential "
            "typed into a credential form",
            openapi_extra={"requestBody": _PARAMS_FORM},
        )
        async def authorize_with_params(request: Request, provider: str) -> Response:
            if not known(provider):
                return outcome_page("unknown_provider", provider)
            try:
                form = await read_form(request, _MAX_FORM)
            except FormError as error:
                return outcome_page("invalid_input", provider, status=error.status)
            token = form.get("link") or request.query_params.get("link", "")
            cookie = request.cookies.get(BINDING_COOKIE)
            secret = form.get("browser_secret")
            try:
                if secret is not None:  # a host-bound link, posted by the host app's page
                    if not host_origins.allows_origin(request.headers.get("origin")):
                        logger.info("host-bound link for %s posted from elsewhere", provider)
                        return outcome_page("other_browser", provider, status=403)
                    found = await link_store.take(token, provider, secret=secret)
                    if found is None:
                        return outcome_page("link_expired", provider)
                    binding = cookie or binding_of(request)
                    if forms is not None and form_provider(provider):
                        return await forms.show(binding, found)
                    if installs is not None and install_provider(provider):
                        return await installs.begin(binding, found)
                    return await start_link(binding, found, confirmed=True)
                if not cookie:  # a cross-site POST carries no cookie: not our page's
                    return outcome_page("other_browser", provider, status=403)
                # Only a link our page issued to this browser is found: the CSRF check.
                found = await link_store.take(token, provider, browser=cookie)
                if found is not None and forms is not None and form_provider(provider):
                    client = request.client.host if request.client is not None else None
                    return await forms.submit(cookie, found, form, client)
                if found is not None and installs is not None and install_provider(provider):
                    return await installs.begin(cookie, found)
            except StorageUnavailable:
                return outcome_page("unavailable", provider)
            if found is None:
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
                    return await ask_for_params(cookie, found, missing, given, errors, status=422)
                complete = replace(found, params={**found.params, **given})
                return await start_link(cookie, complete, confirmed=True)
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
            handle = await connector.hold_callback(provider, kept)
        except VaultError as error:
            return error_page(error, provider)
        url = f"{base}/oauth/{provider}/callback?{urlencode({'resume': handle})}"
        return RedirectResponse(url, status_code=303, headers={"Cache-Control": "no-store"})

    @router.get("/oauth/{provider}/callback", summary="The provider sends the browser here")
    async def callback(request: Request, provider: str) -> Response:
        if installs is not None and install_provider(provider):
            try:
                return await installs.finish(request, provider)
            except StorageUnavailable:
                return outcome_page("unavailable", provider)
        if provider not in connector.provider_names:  # no flow of ours: nothing to hide
            return outcome_page("unknown_provider", provider)
        params = {key: value for key, value in request.query_params.items()}
        try:
            if "resume" in params:
                held = await connector.take_held_callback(provider, params["resume"])
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
        return ends.ended(provider, code, pending.return_url)

    @router.get("/oauth/{provider}/result", summary="How the last connect flow here ended")
    async def result(request: Request, provider: str) -> Response:
        for_provider, _, code = request.cookies.get(OUTCOME_COOKIE, "").rpartition(".")
        if for_provider != provider or code not in OUTCOMES:
            code = "no_outcome"
        if not known(provider):
            code = "unknown_provider"
        return outcome_page(code, provider)

    return router
