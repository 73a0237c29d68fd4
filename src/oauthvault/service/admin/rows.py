"""Connections as the admin pages show them (never a token), and the listing's page
cursor. No I/O."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from oauthvault.errors import InvalidInput
from oauthvault.models import StoredConnection, TokenKey

__all__ = [
    "ConnectionRow",
    "connection_row",
    "ids_of",
    "key_after",
    "key_from",
    "page_cursor",
    "when",
]


@dataclass(frozen=True, slots=True)
class ConnectionRow:
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


def when(moment: datetime | None) -> str | None:
    """``moment`` as the pages write it (UTC, to the second)."""
    return None if moment is None else moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def connection_row(found: StoredConnection, href: str) -> ConnectionRow:
    """The row of ``found``, linking to its page at ``href``."""
    return ConnectionRow(
        found.provider,
        found.workspace_id,
        found.actor_id,
        found.status,
        when(found.expires_at),
        when(found.last_refreshed_at),
        found.last_error,
        found.scope,
        found.has_refresh_token,
        found.key_id,
        when(found.updated_at) or "",
        sorted(found.params.items()),
        href,
    )


def key_from(fields: Mapping[str, str]) -> TokenKey:
    """The connection a query string or form names.

    Raises:
        InvalidInput: an id is missing or malformed.
    """
    return TokenKey(
        fields.get("provider", ""), fields.get("workspace_id", ""), fields.get("actor_id", "")
    )


def ids_of(key: TokenKey) -> tuple[str, str, str]:
    """provider, workspace_id and actor_id, as the vault's methods take them."""
    return key.provider, key.workspace_id, key.actor_id


def page_cursor(key: TokenKey) -> str:
    """The ``after`` of the page that follows the one ending with ``key``."""
    raw = json.dumps([key.provider, key.workspace_id, key.actor_id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def key_after(cursor: str | None) -> TokenKey | None:
    """The last connection of the page before (``None``: the first page).

    Raises:
        InvalidInput: ``after`` is not a cursor of :func:`page_cursor`.
    """
    if not cursor:
        return None
    try:
        ids = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (binascii.Error, ValueError, RecursionError):  # ``[`` nested thousands deep
        ids = None
    if not isinstance(ids, list) or len(ids) != 3 or not all(isinstance(i, str) for i in ids):
        raise InvalidInput("after", "is not a page of this listing")
    return TokenKey(*ids)
