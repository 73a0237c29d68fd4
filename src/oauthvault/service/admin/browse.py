"""The console's pages for looking: the overview, the searchable list of connections, one
connection with its latest audit entries and proxied calls, and the confirmation before
revoking."""

from __future__ import annotations

import asyncio
from collections import deque
from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode

from fastapi import Request
from starlette.responses import Response

from oauthvault.audit import AuditEntry
from oauthvault.errors import InvalidInput, StorageUnavailable, VaultError
from oauthvault.models import ConnectionStatus, StoredConnection, TokenKey
from oauthvault.service.admin.console import NO_DATABASE, AdminConsole
from oauthvault.service.admin.rows import key_after, key_from, page_cursor, when
from oauthvault.service.admin_session import AdminSession

__all__ = ["STATUSES", "confirm_revoke", "connection", "connections", "overview"]

STATUSES = tuple(status.value for status in ConnectionStatus)
_PAGE_SIZE = 50
_FAILURES_SCANNED = 1_000  # failing connections per status looked at for the overview
_AUDIT_SHOWN = 50
_CALLS_SHOWN = 50


async def overview(console: AdminConsole, request: Request, session: AdminSession) -> Response:
    """GET /admin: connections by provider and status, and the latest failing ones."""
    vault = console.vault
    try:
        counts = await vault.count_by_status()
        failing = [
            *await vault.list_connections(status="needs_reauth", limit=_FAILURES_SCANNED),
            *await vault.list_connections(status="degraded", limit=_FAILURES_SCANNED),
        ]
    except VaultError as error:
        return console.failed(error)
    table: dict[str, dict[str, int]] = {}
    for (provider, status), count in counts.items():
        table.setdefault(provider, {})[status] = count
    failing.sort(key=lambda found: found.updated_at, reverse=True)
    return console.page(
        "admin/overview.html",
        session,
        title="Overview",
        statuses=STATUSES,
        counts=sorted(table.items()),
        failures=[console.row(found) for found in failing[:20]],
        done=request.query_params.get("done"),
    )


async def connections(console: AdminConsole, request: Request, session: AdminSession) -> Response:
    """GET /admin/connections: search by provider, workspace, actor and status, 50 a page."""
    given = {
        name: (request.query_params.get(name) or "").strip() or None
        for name in ("provider", "workspace_id", "actor_id", "status")
    }
    query = dict(given)
    rows: list[StoredConnection] = []
    error = None
    try:
        rows = await console.vault.list_connections(
            given["provider"],
            given["workspace_id"],
            _PAGE_SIZE + 1,
            actor_id=given["actor_id"],
            status=given["status"],
            after=key_after(request.query_params.get("after")),
        )
    except InvalidInput as failure:
        error = f"{failure.argument}: {failure.problem}"
    except StorageUnavailable:
        error = NO_DATABASE
    more = len(rows) > _PAGE_SIZE
    rows = rows[:_PAGE_SIZE]
    filters = {name: value for name, value in given.items() if value}
    base = f"{console.root}/admin/connections"
    next_href = (
        f"{base}?{urlencode({**filters, 'after': page_cursor(rows[-1].key)})}" if more else None
    )
    first_href = f"{base}?{urlencode(filters)}" if request.query_params.get("after") else None
    return console.page(
        "admin/connections.html",
        session,
        title="Connections",
        providers=console.connector.provider_names,
        statuses=STATUSES,
        query=query,
        rows=[console.row(found) for found in rows],
        error=error,
        next_href=next_href,
        first_href=first_href,
    )


async def connection(console: AdminConsole, request: Request, session: AdminSession) -> Response:
    """GET /admin/connection: one connection (never a token), its latest audit entries and
    its latest proxied calls."""
    try:
        key = key_from(dict(request.query_params))
        found = await console.stored(key)
        if found is None:
            return console.redirect("/admin?done=gone")
        audit = await _latest_audit(console, key)
        calls = await _latest_calls(console, key)
    except VaultError as error:
        return console.failed(error)
    revoke = console.href(key).replace("/admin/connection?", "/admin/connection/revoke?", 1)
    return console.page(
        "admin/connection.html",
        session,
        title=f"{key.provider} · {key.workspace_id}",
        c=console.row(found),
        audit=audit,
        calls=calls,
        revoke_href=revoke,
        done=request.query_params.get("done"),
    )


async def confirm_revoke(
    console: AdminConsole, request: Request, session: AdminSession
) -> Response:
    """GET /admin/connection/revoke: ask before revoking and deleting a connection."""
    try:
        found = await console.stored(key_from(dict(request.query_params)))
    except VaultError as error:
        return console.failed(error)
    if found is None:
        return console.redirect("/admin?done=gone")
    return console.page(
        "admin/confirm.html",
        session,
        title="Revoke and delete",
        c=console.row(found),
        back_href=console.href(found.key),
    )


async def _latest_audit(console: AdminConsole, key: TokenKey) -> list[dict[str, object]] | None:
    """The newest token reads of the last 30 days, newest first (``None``: off); proxied
    calls have their own table (:func:`_latest_calls`)."""
    trail = console.vault.audit_trail
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
        newest.extend(entry for entry in entries if entry.call is None)
        if len(entries) < 1000:
            break
        after = entries[-1].id
    return [
        {
            "at": when(entry.at),
            "caller": entry.caller,
            "outcome": entry.outcome,
            "source": entry.source,
        }
        for entry in reversed(newest)
    ]


async def _latest_calls(console: AdminConsole, key: TokenKey) -> list[dict[str, object]] | None:
    """The connection's latest calls through the API proxy, newest first (``None``: off)."""
    trail = console.vault.audit_trail
    if trail is None:
        return None
    entries = await asyncio.to_thread(
        trail.latest_calls, key.workspace_id, key.provider, key.actor_id, limit=_CALLS_SHOWN
    )
    return [
        {
            "at": when(entry.at),
            "caller": entry.caller,
            "method": entry.call.method,
            "host": entry.call.host,
            "path": entry.call.path,
            "status": entry.call.status,
            "error": entry.call.error,
            "duration_ms": entry.call.duration_ms,
            "response_bytes": entry.call.response_bytes,
        }
        for entry in entries
        if entry.call is not None
    ]
