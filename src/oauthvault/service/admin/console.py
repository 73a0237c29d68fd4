""":class:`AdminConsole`: what every admin route handler is given (the vault, the
connector, the links, the sessions, the ended ones and the pages) and the helpers they
share: who is
signed in, rendering a page or a message, and the page for an error of the vault."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from fastapi import Request
from starlette.responses import RedirectResponse, Response

from oauthvault.connect.flow import AsyncConnector
from oauthvault.errors import VaultError
from oauthvault.failures import Failure, FailureKind, classify
from oauthvault.models import StoredConnection, TokenKey
from oauthvault.service.admin.rows import ConnectionRow, connection_row
from oauthvault.service.admin_session import AdminSession, AdminSessions, LoginThrottle
from oauthvault.service.forms import FormError, read_form
from oauthvault.service.links import ConnectLinks
from oauthvault.service.pages import Pages
from oauthvault.storage.admin_sessions import EndedSessions
from oauthvault.vault import AsyncOAuthTokenCache

__all__ = ["NO_DATABASE", "SESSION_COOKIE", "AdminConsole", "client_address"]

logger = logging.getLogger("oauthvault.admin")

SESSION_COOKIE = "oauthvault_admin"
NO_DATABASE = "The database cannot be reached right now."
_MAX_FORM = 8_192
_NOTICES = {
    "refreshed": ("The connection was refreshed.", False),
    "revoked": ("The connection was revoked at the provider and deleted.", False),
    "deleted": ("The connection was deleted (the provider did not confirm the revocation).", True),
    "deleted_only": ("The connection was deleted (this provider offers no revocation).", False),
    "gone": ("That connection is not stored any more.", True),
}


def client_address(request: Request) -> str:
    """The client's address, for logs and the audit trail."""
    return request.client.host if request.client else "unknown"


@dataclass(frozen=True, slots=True)
class AdminConsole:
    """The console's collaborators and settings. ``root`` is the public URL without its
    trailing slash; ``secure`` sends cookies over https only."""

    vault: AsyncOAuthTokenCache
    connector: AsyncConnector
    links: ConnectLinks
    sessions: AdminSessions
    ended: EndedSessions
    pages: Pages
    throttle: LoginThrottle
    root: str
    secure: bool

    def href(self, key: TokenKey) -> str:
        """The page of the connection ``key``."""
        ids = {"provider": key.provider, "workspace_id": key.workspace_id, "actor_id": key.actor_id}
        return f"{self.root}/admin/connection?{urlencode(ids)}"

    def row(self, found: StoredConnection) -> ConnectionRow:
        return connection_row(found, self.href(found.key))

    def redirect(self, path: str) -> Response:
        """See other: ``path`` under the public URL."""
        return RedirectResponse(f"{self.root}{path}", status_code=303)

    def to_login(self) -> Response:
        return self.redirect("/admin/login")

    async def signed_in(self, request: Request) -> AdminSession | None:
        """The request's session, if its cookie holds a valid one not signed out of.

        Raises:
            StorageUnavailable: the ended sessions cannot be read (no session is taken
                on trust then).
        """
        session = self.sessions.open(request.cookies.get(SESSION_COOKIE))
        if session is None or await asyncio.to_thread(self.ended.ended, session.id):
            return None
        return session

    async def end(self, session: AdminSession) -> None:
        """Record ``session`` as ended, for every instance, until it would have expired.

        Raises:
            StorageUnavailable: it could not be recorded.
        """
        await asyncio.to_thread(self.ended.end, session.id, session.expires_at, self.sessions.now())

    async def form_of(self, request: Request) -> dict[str, str] | None:
        """The posted form; ``None`` if it is not one or too large."""
        try:
            return await read_form(request, _MAX_FORM)
        except FormError:
            return None

    async def stored(self, key: TokenKey) -> StoredConnection | None:
        """The stored connection ``key`` (never its tokens), if any."""
        found = await self.vault.list_connections(
            key.provider, key.workspace_id, actor_id=key.actor_id, limit=1
        )
        return found[0] if found else None

    def page(
        self, template: str, session: AdminSession, status: int = 200, **context: Any
    ) -> Response:
        """A console page; ``done`` names the notice it shows (the outcome of an action)."""
        notice = _NOTICES.get(str(context.pop("done", "")))
        return self.pages.render(
            template,
            status,
            root=self.root,
            csrf=session.csrf,
            notice=notice[0] if notice else None,
            notice_bad=notice[1] if notice else False,
            **context,
        )

    def message(self, status: int, title: str, text: str) -> Response:
        """A page saying one thing, with a way back to the sign-in page."""
        return self.pages.render(
            "connect/outcome.html",
            status,
            title=title,
            message=text,
            advice=None,
            tone="bad",
            code=None,
            return_url=f"{self.root}/admin/login",
        )

    def failed(self, error: VaultError) -> Response:
        """A page for an error of the vault (never JSON, never a traceback)."""
        failure = classify(error)
        match failure.kind:
            case FailureKind.INVALID_INPUT:
                return self.message(400, "Not valid", f"{failure.argument}: {failure.problem}")
            case FailureKind.STORAGE_UNAVAILABLE:
                return self.message(503, "Try again later", NO_DATABASE)
            case FailureKind.DECRYPTION_ERROR:
                text = "This connection's tokens do not decrypt."
                return self.message(409, "Cannot be opened", text)
            case FailureKind.UNKNOWN_PROVIDER:
                text = "This provider is not configured any more."
                return self.message(404, "Unknown provider", text)
            case FailureKind.CLIENT_REJECTED:
                text = (
                    f"The provider refused this app's client ({_answer(failure)}): check "
                    "the provider's client id, secret and allowed grant types."
                )
                return self.message(502, "Client refused", text)
            case FailureKind.REAUTHORIZATION_REQUIRED:
                text = f"The provider refused the grant ({_answer(failure)}): connect again."
                return self.message(502, "Reconnect needed", text)
            case FailureKind.PROVIDER_ERROR:
                text = f"The provider did not renew the token ({_answer(failure)})."
                return self.message(502, "Provider unavailable", text)
            case _:
                logger.warning("admin request failed: %s", type(error).__name__)
                return self.message(400, "Failed", "The vault could not do this.")


def _answer(failure: Failure) -> str:
    """The provider's error code and description, as a failure carries them."""
    code = failure.provider_error or "no answer"
    return f"{code}: {failure.description}" if failure.description else code
