"""Signing in to the admin console and out of it.

The sign-in form carries its own CSRF token (double submit: a cookie and a field), a
throttle limits failed sign-ins per client address, and a good credential gets the
session cookie: ``HttpOnly``, ``SameSite=Strict``, ``Secure`` behind https.
"""

from __future__ import annotations

import logging
import secrets

from fastapi import Request
from starlette.responses import Response

from oauthvault.service.admin.console import SESSION_COOKIE, AdminConsole, client_address
from oauthvault.service.admin_session import AdminSession

__all__ = ["login", "login_form", "logout"]

logger = logging.getLogger("oauthvault.admin")

_LOGIN_COOKIE = "oauthvault_admin_login"  # the sign-in form's CSRF token (double submit)


def _login_page(
    console: AdminConsole, request: Request, status: int = 200, error: str | None = None
) -> Response:
    token = request.cookies.get(_LOGIN_COOKIE) or secrets.token_urlsafe(32)
    response = console.pages.render(
        "admin/login.html", status, title="Sign in", root=console.root, csrf=token, error=error
    )
    response.set_cookie(
        _LOGIN_COOKIE,
        token,
        max_age=3600,
        path="/admin",
        httponly=True,
        secure=console.secure,
        samesite="strict",
    )
    return response


async def login_form(console: AdminConsole, request: Request) -> Response:
    """GET /admin/login: the form, or the overview when already signed in."""
    if await console.signed_in(request) is not None:
        return console.redirect("/admin")
    return _login_page(console, request)


async def login(console: AdminConsole, request: Request) -> Response:
    """POST /admin/login: check the form's token and the credential; start a session."""
    address = client_address(request)
    if console.throttle.blocked(address):
        logger.warning("admin sign-in refused: too many failures from %s", address)
        return _login_page(console, request, 429, "Too many failed sign-ins. Wait a few minutes.")
    form = await console.form_of(request) or {}
    expected = request.cookies.get(_LOGIN_COOKIE, "")
    presented = form.get("csrf", "")
    if not expected or not secrets.compare_digest(presented.encode(), expected.encode()):
        return _login_page(console, request, 403, "The sign-in form expired. Try again.")
    if not console.sessions.check_credential(form.get("credential")):
        console.throttle.failed(address)
        logger.warning("admin sign-in failed from %s", address)  # never the credential
        return _login_page(console, request, 401, "That credential is not right.")
    console.throttle.succeeded(address)
    logger.info("admin signed in from %s", address)
    cookie, _ = console.sessions.issue()
    response = console.redirect("/admin")
    response.set_cookie(
        SESSION_COOKIE,
        cookie,
        max_age=console.sessions.ttl,
        path="/admin",
        httponly=True,
        secure=console.secure,
        samesite="strict",
    )
    response.delete_cookie(_LOGIN_COOKIE, path="/admin")
    return response


async def logout(
    console: AdminConsole, request: Request, session: AdminSession, form: dict[str, str]
) -> Response:
    """POST /admin/logout: the session is recorded as ended (a copy of its cookie is
    refused by every instance) and the browser drops the cookie."""
    await console.end(session)
    logger.info("admin signed out from %s", client_address(request))
    response = console.to_login()
    response.delete_cookie(SESSION_COOKIE, path="/admin")
    return response
