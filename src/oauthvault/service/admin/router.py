"""``create_admin_router``: the console's routes, each a plain handler given the
:class:`~oauthvault.service.admin.console.AdminConsole`.

Handlers come in three shapes, and the router checks what their shape promises before
calling them: a public page gets the request; a signed-in page also the session (or the
browser goes to the sign-in page); an action also the posted form, and only with a session
whose CSRF token the form carries (its errors of the vault become pages).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from fastapi import APIRouter, Request
from starlette.responses import Response

from oauthvault.connect.flow import AsyncConnector
from oauthvault.errors import VaultError
from oauthvault.service.admin import actions, browse, signin
from oauthvault.service.admin.console import AdminConsole, client_address
from oauthvault.service.admin_session import AdminSession, AdminSessions, LoginThrottle
from oauthvault.service.links import ConnectLinks
from oauthvault.service.pages import Pages
from oauthvault.storage.admin_sessions import EndedSessions
from oauthvault.vault import AsyncOAuthTokenCache

__all__ = ["create_admin_router"]

logger = logging.getLogger("oauthvault.admin")

Endpoint = Callable[[Request], Awaitable[Response]]
PublicPage = Callable[[AdminConsole, Request], Awaitable[Response]]
SignedInPage = Callable[[AdminConsole, Request, AdminSession], Awaitable[Response]]
Action = Callable[[AdminConsole, Request, AdminSession, dict[str, str]], Awaitable[Response]]


def create_admin_router(
    vault: AsyncOAuthTokenCache,
    connector: AsyncConnector,
    links: ConnectLinks,
    sessions: AdminSessions,
    ended: EndedSessions,
    pages: Pages,
    *,
    public_url: str,
    throttle: LoginThrottle | None = None,
) -> APIRouter:
    """The console's routes (left out of the OpenAPI document: they are pages)."""
    console = AdminConsole(
        vault,
        connector,
        links,
        sessions,
        ended,
        pages,
        throttle or LoginThrottle(),
        root=public_url.rstrip("/"),
        secure=public_url.startswith("https://"),
    )
    router = APIRouter(include_in_schema=False)
    public: list[tuple[str, str, PublicPage]] = [
        ("GET", "/admin/login", signin.login_form),
        ("POST", "/admin/login", signin.login),
    ]
    signed_in: list[tuple[str, SignedInPage]] = [
        ("/admin", browse.overview),
        ("/admin/connections", browse.connections),
        ("/admin/connection", browse.connection),
        ("/admin/connection/revoke", browse.confirm_revoke),
    ]
    checked: list[tuple[str, Action]] = [
        ("/admin/logout", signin.logout),
        ("/admin/connection/refresh", actions.refresh),
        ("/admin/connection/reconnect-link", actions.reconnect_link),
        ("/admin/connection/revoke", actions.revoke),
    ]
    for method, path, page in public:
        router.add_api_route(
            path, _public_page(console, page), methods=[method], name=page.__name__
        )
    for path, signed_in_page in signed_in:
        router.add_api_route(
            path,
            _signed_in_page(console, signed_in_page),
            methods=["GET"],
            name=signed_in_page.__name__,
        )
    for path, action in checked:
        router.add_api_route(
            path, _checked_action(console, action), methods=["POST"], name=action.__name__
        )
    return router


def _public_page(console: AdminConsole, page: PublicPage) -> Endpoint:
    async def endpoint(request: Request) -> Response:
        try:
            return await page(console, request)
        except VaultError as error:
            return console.failed(error)

    return endpoint


def _signed_in_page(console: AdminConsole, page: SignedInPage) -> Endpoint:
    async def endpoint(request: Request) -> Response:
        try:
            session = await console.signed_in(request)
        except VaultError as error:
            return console.failed(error)
        if session is None:
            return console.to_login()
        return await page(console, request, session)

    return endpoint


def _checked_action(console: AdminConsole, action: Action) -> Endpoint:
    """Run a state-changing ``action`` only with a session and its CSRF token."""

    async def endpoint(request: Request) -> Response:
        try:
            session = await console.signed_in(request)
            if session is None:
                return console.message(403, "Signed out", "Sign in to the admin console again.")
            form = await console.form_of(request)
            if form is None or not session.accepts(form.get("csrf")):
                address = client_address(request)
                logger.warning("admin request refused: bad CSRF token (from %s)", address)
                return console.message(
                    403, "Refused", "This form is stale or was not sent by the console."
                )
            return await action(console, request, session, form)
        except VaultError as error:
            return console.failed(error)

    return endpoint
