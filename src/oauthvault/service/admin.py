"""The admin console at ``/admin``: server-rendered pages over the vault's connections.

Signed-in operators search connections across workspaces, look at one (never a token), and
refresh it, make a reconnect link, or revoke and delete it. Every state-changing request is
a POST carrying the session's CSRF token; the session cookie is ``HttpOnly``,
``SameSite=Strict``, ``Secure`` behind https, and ends after ``[admin] session_ttl``.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging
import secrets
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from starlette.responses import RedirectResponse, Response

from oauthvault.audit import AuditEntry
from oauthvault.errors import (
    DecryptionError,
    InvalidInput,
    ProviderError,
    StorageUnavailable,
    UnknownProvider,
    VaultError,
)
from oauthvault.failures import FailureKind, classify
from oauthvault.models import ConnectionStatus, StoredConnection, TokenKey
from oauthvault.oauth.connect import AsyncConnector
from oauthvault.service.admin_session import AdminSession, AdminSessions, LoginThrottle
from oauthvault.service.forms import FormError, read_form
from oauthvault.service.links import ConnectLink, ConnectLinks
from oauthvault.service.pages import Pages
from oauthvault.vault import AsyncOAuthTokenCache

__all__ = ["SESSION_COOKIE", "create_admin_router"]

logger = logging.getLogger("oauthvault.admin")

SESSION_COOKIE = "oauthvault_admin"
_LOGIN_COOKIE = "oauthvault_admin_login"  # the sign-in form's CSRF token (double submit)
_PAGE_SIZE = 50
_FAILURES_SCANNED = 1_000  # failing connections per status looked at for the overview
_AUDIT_SHOWN = 50
_MAX_FORM = 8_192
_NO_DATABASE = "The database cannot be reached right now."
STATUSES = tuple(status.value for status in ConnectionStatus)
_NOTICES = {
    "refreshed": ("The connection was refreshed.", False),
    "revoked": ("The connection was revoked at the provider and deleted.", False),
    "deleted": ("The connection was deleted (the provider did not confirm the revocation).", True),
    "deleted_only": ("The connection was deleted (this provider offers no revocation).", False),
    "gone": ("That connection is not stored any more.", True),
}


@dataclass(frozen=True, slots=True)
class _Row:
    """A connection as the pages show it: never a token."""

    provider: str
    workspace_id: str
    actor_id: str
    status: str
    expires_at: str | None
    last_refreshed_at: str | None
    last_error: str | None
    scope: str | None
    has_refresh_token: bool
    key_id: str
    updated_at: str
    params: list[tuple[str, str]]
    href: str


def _when(moment: datetime | None) -> str | None:
    return None if moment is None else moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _ids(key: TokenKey) -> tuple[str, str, str]:
    return key.provider, key.workspace_id, key.actor_id


def _cursor(key: TokenKey) -> str:
    raw = json.dumps([key.provider, key.workspace_id, key.actor_id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _after(cursor: str | None) -> TokenKey | None:
    if not cursor:
        return None
    try:
        ids = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (binascii.Error, ValueError):
        ids = None
    if not isinstance(ids, list) or len(ids) != 3 or not all(isinstance(i, str) for i in ids):
        raise InvalidInput("after", "is not a page of this listing")
    return TokenKey(*ids)


def create_admin_router(
    vault: AsyncOAuthTokenCache,
    connector: AsyncConnector,
    links: ConnectLinks,
    sessions: AdminSessions,
    pages: Pages,
    *,
    public_url: str,
    throttle: LoginThrottle | None = None,
) -> APIRouter:
    """The console's routes (left out of the OpenAPI document: they are pages)."""
    router = APIRouter(include_in_schema=False)
    root = public_url.rstrip("/")
    secure = public_url.startswith("https://")
    limiter = throttle or LoginThrottle()

    def href(key: TokenKey) -> str:
        ids = {"provider": key.provider, "workspace_id": key.workspace_id, "actor_id": key.actor_id}
        return f"{root}/admin/connection?{urlencode(ids)}"

    def row(found: StoredConnection) -> _Row:
        return _Row(
            found.provider,
            found.workspace_id,
            found.actor_id,
            found.status,
            _when(found.expires_at),
            _when(found.last_refreshed_at),
            found.last_error,
            found.scope,
            found.has_refresh_token,
            found.key_id,
            _when(found.updated_at) or "",
            sorted(found.params.items()),
            href(found.key),
        )

    def page(template: str, session: AdminSession, status: int = 200, **context: Any) -> Response:
        notice = _NOTICES.get(str(context.pop("done", "")))
        return pages.render(
            template,
            status,
            root=root,
            csrf=session.csrf,
            notice=notice[0] if notice else None,
            notice_bad=notice[1] if notice else False,
            **context,
        )

    def message(status: int, title: str, text: str) -> Response:
        return pages.render(
            "connect/outcome.html",
            status,
            title=title,
            message=text,
            advice=None,
            tone="bad",
            code=None,
            return_url=f"{root}/admin/login",
        )

    def client(request: Request) -> str:
        return request.client.host if request.client else "unknown"

    def signed_in(request: Request) -> AdminSession | None:
        return sessions.open(request.cookies.get(SESSION_COOKIE))

    def to_login() -> Response:
        return RedirectResponse(f"{root}/admin/login", status_code=303)

    async def form_of(request: Request) -> dict[str, str] | None:
        try:
            return await read_form(request, _MAX_FORM)
        except FormError:
            return None

    Action = Callable[[AdminSession, dict[str, str]], Awaitable[Response]]

    async def checked(request: Request, action: Action) -> Response:
        """Run a state-changing ``action`` only with a session and its CSRF token."""
        session = signed_in(request)
        if session is None:
            return message(403, "Signed out", "Sign in to the admin console again.")
        form = await form_of(request)
        if form is None or not session.accepts(form.get("csrf")):
            logger.warning("admin request refused: bad CSRF token (from %s)", client(request))
            return message(403, "Refused", "This form is stale or was not sent by the console.")
        try:
            return await action(session, form)
        except VaultError as error:
            return failed(error)

    def failed(error: VaultError) -> Response:
        """A page for an error of the vault (never JSON, never a traceback)."""
        failure = classify(error)
        match failure.kind:
            case FailureKind.INVALID_INPUT:
                return message(400, "Not valid", f"{failure.argument}: {failure.problem}")
            case FailureKind.STORAGE_UNAVAILABLE:
                return message(503, "Try again later", _NO_DATABASE)
            case FailureKind.DECRYPTION_ERROR:
                return message(409, "Cannot be opened", "This connection's tokens do not decrypt.")
            case FailureKind.UNKNOWN_PROVIDER:
                return message(404, "Unknown provider", "This provider is not configured any more.")
            case FailureKind.PROVIDER_ERROR | FailureKind.REAUTHORIZATION_REQUIRED:
                return message(502, "Provider unavailable", "The provider could not be reached.")
            case _:
                logger.warning("admin request failed: %s", type(error).__name__)
                return message(400, "Failed", "The vault could not do this.")

    def key_from(form: dict[str, str]) -> TokenKey:
        return TokenKey(
            form.get("provider", ""), form.get("workspace_id", ""), form.get("actor_id", "")
        )

    async def stored(key: TokenKey) -> StoredConnection | None:
        found = await vault.list_connections(
            key.provider, key.workspace_id, actor_id=key.actor_id, limit=1
        )
        return found[0] if found else None

    async def latest_audit(key: TokenKey) -> list[dict[str, object]] | None:
        """The newest audit entries of the last 30 days, newest first (``None``: off)."""
        trail = vault.audit_trail
        if trail is None:
            return None
        since = datetime.now(UTC) - timedelta(days=30)
        newest: deque[AuditEntry] = deque(maxlen=_AUDIT_SHOWN)
        after = 0
        for _ in range(1_000):  # pages of 1,000, oldest first: keep the last ones
            entries = await asyncio.to_thread(
                trail.read,
                key.workspace_id,
                provider=key.provider,
                actor_id=key.actor_id,
                since=since,
                after=after,
                limit=1000,
            )
            newest.extend(entries)
            if len(entries) < 1000:
                break
            after = entries[-1].id
        return [
            {
                "at": _when(entry.at),
                "caller": entry.caller,
                "outcome": entry.outcome,
                "source": entry.source,
            }
            for entry in reversed(newest)
        ]

    # --- signing in and out ------------------------------------------------------------------

    @router.get("/admin/login")
    async def login_form(request: Request) -> Response:
        if signed_in(request) is not None:
            return RedirectResponse(f"{root}/admin", status_code=303)
        return login_page(request)

    def login_page(request: Request, status: int = 200, error: str | None = None) -> Response:
        token = request.cookies.get(_LOGIN_COOKIE) or secrets.token_urlsafe(32)
        response = pages.render(
            "admin/login.html", status, title="Sign in", root=root, csrf=token, error=error
        )
        response.set_cookie(
            _LOGIN_COOKIE,
            token,
            max_age=3600,
            path="/admin",
            httponly=True,
            secure=secure,
            samesite="strict",
        )
        return response

    @router.post("/admin/login")
    async def login(request: Request) -> Response:
        address = client(request)
        if limiter.blocked(address):
            logger.warning("admin sign-in refused: too many failures from %s", address)
            return login_page(request, 429, "Too many failed sign-ins. Wait a few minutes.")
        form = await form_of(request) or {}
        expected = request.cookies.get(_LOGIN_COOKIE, "")
        presented = form.get("csrf", "")
        if not expected or not secrets.compare_digest(presented.encode(), expected.encode()):
            return login_page(request, 403, "The sign-in form expired. Try again.")
        if not sessions.check_credential(form.get("credential")):
            limiter.failed(address)
            logger.warning("admin sign-in failed from %s", address)  # never the credential
            return login_page(request, 401, "That credential is not right.")
        limiter.succeeded(address)
        logger.info("admin signed in from %s", address)
        cookie, _ = sessions.issue()
        response = RedirectResponse(f"{root}/admin", status_code=303)
        response.set_cookie(
            SESSION_COOKIE,
            cookie,
            max_age=sessions.ttl,
            path="/admin",
            httponly=True,
            secure=secure,
            samesite="strict",
        )
        response.delete_cookie(_LOGIN_COOKIE, path="/admin")
        return response

    @router.post("/admin/logout")
    async def logout(request: Request) -> Response:
        async def sign_out(session: AdminSession, form: dict[str, str]) -> Response:
            response = to_login()
            response.delete_cookie(SESSION_COOKIE, path="/admin")
            return response

        return await checked(request, sign_out)

    # --- looking -------------------------------------------------------------------------------

    @router.get("/admin")
    async def overview(request: Request) -> Response:
        session = signed_in(request)
        if session is None:
            return to_login()
        try:
            counts = await vault.count_by_status()
            failing = [
                *await vault.list_connections(status="needs_reauth", limit=_FAILURES_SCANNED),
                *await vault.list_connections(status="degraded", limit=_FAILURES_SCANNED),
            ]
        except VaultError as error:
            return failed(error)
        table: dict[str, dict[str, int]] = {}
        for (provider, status), count in counts.items():
            table.setdefault(provider, {})[status] = count
        failing.sort(key=lambda found: found.updated_at, reverse=True)
        return page(
            "admin/overview.html",
            session,
            title="Overview",
            statuses=STATUSES,
            counts=sorted(table.items()),
            failures=[row(found) for found in failing[:20]],
            done=request.query_params.get("done"),
        )

    @router.get("/admin/connections")
    async def connections(request: Request) -> Response:
        session = signed_in(request)
        if session is None:
            return to_login()
        given = {
            name: (request.query_params.get(name) or "").strip() or None
            for name in ("provider", "workspace_id", "actor_id", "status")
        }
        query = dict(given)
        rows: list[StoredConnection] = []
        error = None
        try:
            rows = await vault.list_connections(
                given["provider"],
                given["workspace_id"],
                _PAGE_SIZE + 1,
                actor_id=given["actor_id"],
                status=given["status"],
                after=_after(request.query_params.get("after")),
            )
        except InvalidInput as failure:
            error = f"{failure.argument}: {failure.problem}"
        except StorageUnavailable:
            error = _NO_DATABASE
        more = len(rows) > _PAGE_SIZE
        rows = rows[:_PAGE_SIZE]
        filters = {name: value for name, value in given.items() if value}
        base = f"{root}/admin/connections"
        next_href = (
            f"{base}?{urlencode({**filters, 'after': _cursor(rows[-1].key)})}" if more else None
        )
        first_href = f"{base}?{urlencode(filters)}" if request.query_params.get("after") else None
        return page(
            "admin/connections.html",
            session,
            title="Connections",
            providers=connector.provider_names,
            statuses=STATUSES,
            query=query,
            rows=[row(found) for found in rows],
            error=error,
            next_href=next_href,
            first_href=first_href,
        )

    @router.get("/admin/connection")
    async def connection(request: Request) -> Response:
        session = signed_in(request)
        if session is None:
            return to_login()
        try:
            key = key_from(dict(request.query_params))
            found = await stored(key)
            if found is None:
                return RedirectResponse(f"{root}/admin?done=gone", status_code=303)
            audit = await latest_audit(key)
        except VaultError as error:
            return failed(error)
        revoke = href(key).replace("/admin/connection?", "/admin/connection/revoke?", 1)
        return page(
            "admin/connection.html",
            session,
            title=f"{key.provider} · {key.workspace_id}",
            c=row(found),
            audit=audit,
            revoke_href=revoke,
            done=request.query_params.get("done"),
        )

    @router.get("/admin/connection/revoke")
    async def confirm_revoke(request: Request) -> Response:
        session = signed_in(request)
        if session is None:
            return to_login()
        try:
            found = await stored(key_from(dict(request.query_params)))
        except VaultError as error:
            return failed(error)
        if found is None:
            return RedirectResponse(f"{root}/admin?done=gone", status_code=303)
        return page(
            "admin/confirm.html",
            session,
            title="Revoke and delete",
            c=row(found),
            back_href=href(found.key),
        )

    # --- acting --------------------------------------------------------------------------------

    @router.post("/admin/connection/refresh")
    async def refresh(request: Request) -> Response:
        async def run(session: AdminSession, form: dict[str, str]) -> Response:
            key = key_from(form)
            outcome = "refreshed"
            try:
                await vault.refresh_tokens(
                    *_ids(key), caller="admin console", source=client(request)
                )
            except VaultError as error:  # the page shows the connection's new status and error
                logger.info("admin refresh of a %s connection failed: %s", key.provider, error)
                outcome = ""
            target = href(key) + (f"&done={outcome}" if outcome else "")
            return RedirectResponse(target, status_code=303)

        return await checked(request, run)

    @router.post("/admin/connection/reconnect-link")
    async def reconnect_link(request: Request) -> Response:
        async def run(session: AdminSession, form: dict[str, str]) -> Response:
            key = key_from(form)
            found = await stored(key)
            if found is None:
                return RedirectResponse(f"{root}/admin?done=gone", status_code=303)
            config = await connector.provider(key.provider)
            declared = config.spec.connection_params if config.spec else ()
            # The link parameters the connection was made with (a Shopify shop) go with it;
            # the app's fixed ones are filled in again when the flow starts.
            kept = {
                param.name: found.params[param.name]
                for param in declared
                if param.source == "link"
                and param.name in found.params
                and param.name not in config.placeholders
            }
            token, expires_at = await links.create(ConnectLink(*_ids(key), None, kept))
            url = f"{root}/oauth/{key.provider}/authorize?{urlencode({'link': token})}"
            logger.info("admin made a reconnect link for a %s connection", key.provider)
            return page(
                "admin/link.html",
                session,
                title="Reconnect link",
                c=row(found),
                url=url,
                expires_at=_when(expires_at),
                back_href=href(key),
            )

        return await checked(request, run)

    @router.post("/admin/connection/revoke")
    async def revoke(request: Request) -> Response:
        async def run(session: AdminSession, form: dict[str, str]) -> Response:
            key = key_from(form)
            if form.get("confirm") != "yes":
                return RedirectResponse(href(key), status_code=303)
            try:
                outcome = await vault.delete_tokens(*_ids(key), revoke=True)
                deleted, revoked = outcome.deleted, outcome.revoked
            except (DecryptionError, UnknownProvider, ProviderError) as error:
                # Tokens that do not open, or a provider that is gone or down: nothing can
                # be revoked, and the connection is deleted all the same.
                logger.info("admin revoke of a %s connection: %s", key.provider, error)
                deleted, revoked = await vault.delete_tokens(*_ids(key)), False
            logger.info("admin deleted a %s connection (revoked: %s)", key.provider, revoked)
            if not deleted:
                done = "gone"
            elif revoked is None:
                done = "deleted_only"
            elif revoked is False:
                done = "deleted"
            else:
                done = "revoked"
            return RedirectResponse(f"{root}/admin?done={done}", status_code=303)

        return await checked(request, run)

    return router
