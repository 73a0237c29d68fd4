"""The console's actions on one connection: refresh it, make a reconnect link for it, or
revoke and delete it. Each is a POST whose session and CSRF token the router checked."""

from __future__ import annotations

import logging
from urllib.parse import urlencode

from fastapi import Request
from starlette.responses import RedirectResponse, Response

from oauthvault.errors import DecryptionError, ProviderError, UnknownProvider, VaultError
from oauthvault.service.admin.console import AdminConsole, client_address
from oauthvault.service.admin.rows import ids_of, key_from, when
from oauthvault.service.admin_session import AdminSession
from oauthvault.service.links import ConnectLink

__all__ = ["reconnect_link", "refresh", "revoke"]

logger = logging.getLogger("oauthvault.admin")


async def refresh(
    console: AdminConsole, request: Request, session: AdminSession, form: dict[str, str]
) -> Response:
    """POST /admin/connection/refresh: refresh now; back to the connection's page."""
    key = key_from(form)
    outcome = "refreshed"
    try:
        await console.vault.refresh_tokens(
            *ids_of(key), caller="admin console", source=client_address(request)
        )
    except VaultError as error:  # the page shows the connection's new status and error
        logger.info("admin refresh of a %s connection failed: %s", key.provider, error)
        outcome = ""
    target = console.href(key) + (f"&done={outcome}" if outcome else "")
    return RedirectResponse(target, status_code=303)


async def reconnect_link(
    console: AdminConsole, request: Request, session: AdminSession, form: dict[str, str]
) -> Response:
    """POST /admin/connection/reconnect-link: a connect link for the same connection."""
    key = key_from(form)
    found = await console.stored(key)
    if found is None:
        return console.redirect("/admin?done=gone")
    config = await console.connector.provider(key.provider)
    declared = config.spec.connection_params if config.spec else ()
    # The link parameters the connection was made with (a Shopify shop) go with it; the
    # app's fixed ones are filled in again when the flow starts.
    kept = {
        param.name: found.params[param.name]
        for param in declared
        if param.source == "link"
        and param.name in found.params
        and param.name not in config.placeholders
    }
    token, expires_at = await console.links.create(ConnectLink(*ids_of(key), None, kept))
    url = f"{console.root}/oauth/{key.provider}/authorize?{urlencode({'link': token})}"
    logger.info("admin made a reconnect link for a %s connection", key.provider)
    return console.page(
        "admin/link.html",
        session,
        title="Reconnect link",
        c=console.row(found),
        url=url,
        expires_at=when(expires_at),
        back_href=console.href(key),
    )


async def revoke(
    console: AdminConsole, request: Request, session: AdminSession, form: dict[str, str]
) -> Response:
    """POST /admin/connection/revoke: revoke at the provider (when it can), then delete."""
    key = key_from(form)
    if form.get("confirm") != "yes":
        return RedirectResponse(console.href(key), status_code=303)
    vault = console.vault
    try:
        outcome = await vault.delete_tokens(*ids_of(key), revoke=True)
        deleted, revoked = outcome.deleted, outcome.revoked
    except (DecryptionError, UnknownProvider, ProviderError) as error:
        # Tokens that do not open, or a provider that is gone or down: nothing can be
        # revoked, and the connection is deleted all the same.
        logger.info("admin revoke of a %s connection: %s", key.provider, error)
        deleted, revoked = await vault.delete_tokens(*ids_of(key)), False
    logger.info("admin deleted a %s connection (revoked: %s)", key.provider, revoked)
    if not deleted:
        done = "gone"
    elif revoked is None:
        done = "deleted_only"
    elif revoked is False:
        done = "deleted"
    else:
        done = "revoked"
    return console.redirect(f"/admin?done={done}")
