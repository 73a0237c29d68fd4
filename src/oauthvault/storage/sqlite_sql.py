"""The SQL of the SQLite stores, and the conversions of its rows (no I/O).

Timestamps are stored as fixed-width UTC ISO text, which sorts and compares like the
instant it names; they come from the vault's clock, never from SQLite.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from oauthvault.crypto.sealing import SealedRow
from oauthvault.models import StoredConnection, TokenKey, decode_params
from oauthvault.storage.base import RefreshLease, RefreshSave

__all__ = [
    "CLEAR_INVALIDATION",
    "COUNT_BY_KEY",
    "COUNT_BY_STATUS",
    "DELETE_ROW",
    "EXPIRING",
    "IDLE",
    "LIST_ROWS",
    "LOCK_ROW",
    "PENDING_INVALIDATIONS",
    "PURGE_PENDING",
    "PUT_PENDING",
    "RECORD_INVALIDATION",
    "RELEASE_LEASE",
    "SAVE_REFRESHED_TOKENS",
    "SAVE_REFRESH_STATUS",
    "SCHEMA_REVISION",
    "SELECT_FOR_ROTATION",
    "SELECT_ROW",
    "TAKE_LEASE",
    "TAKE_PENDING",
    "UPDATE_LOCKED_STATUS",
    "UPDATE_SEALED",
    "UPSERT_ROW",
    "from_text",
    "key_params",
    "locked_state",
    "save_refreshed",
    "sealed_row",
    "stored_connection",
    "to_text",
    "upsert_params",
]

SELECT_ROW = """
SELECT access_token_encrypted, refresh_token_encrypted, key_id, expires_at, scope,
    connection_params, token_response_encrypted, issued_at, version
FROM oauth_tokens WHERE provider = ? AND workspace_id = ? AND actor_id = ?
"""
LOCK_ROW = """
SELECT access_token_encrypted, refresh_token_encrypted, key_id, expires_at, scope,
    connection_params, token_response_encrypted, issued_at, version, status,
    refresh_lease_owner, refresh_lease_until, last_error
FROM oauth_tokens WHERE provider = ? AND workspace_id = ? AND actor_id = ?
"""
UPSERT_ROW = """
INSERT INTO oauth_tokens (id, provider, workspace_id, actor_id, access_token_encrypted,
    refresh_token_encrypted, key_id, expires_at, scope, connection_params,
    token_response_encrypted, issued_at, created_at, updated_at, version)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?,
    (SELECT value + 1 FROM oauth_version_counter))
ON CONFLICT (provider, workspace_id, actor_id) DO UPDATE SET
    access_token_encrypted = excluded.access_token_encrypted,
    refresh_token_encrypted = excluded.refresh_token_encrypted,
    key_id = excluded.key_id,
    expires_at = excluded.expires_at,
    scope = excluded.scope,
    connection_params = excluded.connection_params,
    token_response_encrypted = excluded.token_response_encrypted,
    issued_at = excluded.issued_at,
    status = 'active',
    last_error = NULL,
    updated_at = excluded.updated_at,
    version = (SELECT value + 1 FROM oauth_version_counter),
    refresh_lease_owner = NULL,
    refresh_lease_until = NULL
RETURNING version
"""
DELETE_ROW = """
DELETE FROM oauth_tokens WHERE provider = ? AND workspace_id = ? AND actor_id = ?
RETURNING version
"""
LIST_ROWS = """
SELECT provider, workspace_id, actor_id, expires_at, scope,
    refresh_token_encrypted IS NOT NULL, key_id, updated_at, status, last_refreshed_at,
    last_error, connection_params
FROM oauth_tokens
WHERE (:provider IS NULL OR provider = :provider)
  AND (:workspace_id IS NULL OR workspace_id = :workspace_id)
  AND (:actor_id IS NULL OR actor_id = :actor_id)
  AND (:status IS NULL OR status = :status)
  AND (provider, workspace_id, actor_id) > (:after_provider, :after_workspace_id, :after_actor_id)
ORDER BY provider, workspace_id, actor_id
LIMIT :limit
"""
COUNT_BY_KEY = "SELECT key_id, count(*) FROM oauth_tokens GROUP BY key_id"
COUNT_BY_STATUS = "SELECT provider, status, count(*) FROM oauth_tokens GROUP BY provider, status"
SELECT_FOR_ROTATION = """
SELECT id, provider, workspace_id, actor_id, access_token_encrypted,
    refresh_token_encrypted, key_id, expires_at, scope, connection_params,
    token_response_encrypted, issued_at, version
FROM oauth_tokens WHERE key_id <> ? AND id > ? ORDER BY id LIMIT ?
"""
UPDATE_SEALED = """
UPDATE oauth_tokens SET access_token_encrypted = ?, refresh_token_encrypted = ?, key_id = ?,
    token_response_encrypted = ?,
    version = (SELECT value + 1 FROM oauth_version_counter)
WHERE id = ?
"""
UPDATE_LOCKED_STATUS = """
UPDATE oauth_tokens SET status = ?, last_error = ?, updated_at = ?,
    version = (SELECT value + 1 FROM oauth_version_counter)
WHERE provider = ? AND workspace_id = ? AND actor_id = ?
"""
TAKE_LEASE = """
UPDATE oauth_tokens SET refresh_lease_owner = ?, refresh_lease_until = ?,
    version = (SELECT value + 1 FROM oauth_version_counter)
WHERE provider = ? AND workspace_id = ? AND actor_id = ?
RETURNING version
"""
RELEASE_LEASE = """
UPDATE oauth_tokens SET refresh_lease_owner = NULL, refresh_lease_until = NULL
WHERE provider = ? AND workspace_id = ? AND actor_id = ? AND refresh_lease_owner = ?
"""
# As in postgres_sql: saved only over the version read, or while the lease is still ours.
SAVE_REFRESHED_TOKENS = """
UPDATE oauth_tokens SET access_token_encrypted = ?, refresh_token_encrypted = ?, key_id = ?,
    expires_at = ?, scope = ?, connection_params = ?, token_response_encrypted = ?,
    issued_at = ?, status = ?, last_error = ?, last_refreshed_at = ?, updated_at = ?,
    version = (SELECT value + 1 FROM oauth_version_counter),
    refresh_lease_owner = NULL, refresh_lease_until = NULL
WHERE provider = ? AND workspace_id = ? AND actor_id = ?
  AND (version = ? OR refresh_lease_owner = ?)
RETURNING version
"""
SAVE_REFRESH_STATUS = """
UPDATE oauth_tokens SET status = ?, last_error = ?, updated_at = ?,
    version = (SELECT value + 1 FROM oauth_version_counter),
    refresh_lease_owner = NULL, refresh_lease_until = NULL
WHERE provider = ? AND workspace_id = ? AND actor_id = ?
  AND (version = ? OR refresh_lease_owner = ?)
RETURNING version
"""
RECORD_INVALIDATION = """
INSERT INTO oauth_cache_invalidations (cache_key, recorded_at) VALUES (?, ?)
ON CONFLICT (cache_key) DO NOTHING
"""
PENDING_INVALIDATIONS = "SELECT cache_key FROM oauth_cache_invalidations LIMIT ?"
CLEAR_INVALIDATION = "DELETE FROM oauth_cache_invalidations WHERE cache_key = ?"
EXPIRING = """
SELECT provider, workspace_id, actor_id FROM oauth_tokens
WHERE status IN ('active', 'degraded') AND refresh_token_encrypted IS NOT NULL
  AND expires_at < ?
ORDER BY expires_at LIMIT ?
"""
IDLE = """
SELECT provider, workspace_id, actor_id FROM oauth_tokens
WHERE provider = ? AND status IN ('active', 'degraded')
  AND refresh_token_encrypted IS NOT NULL
  AND coalesce(last_refreshed_at, updated_at) < ?
ORDER BY coalesce(last_refreshed_at, updated_at) LIMIT ?
"""
PURGE_PENDING = "DELETE FROM oauth_pending WHERE expires_at < ?"
PUT_PENDING = "INSERT INTO oauth_pending (record_id, sealed, expires_at) VALUES (?, ?, ?)"
TAKE_PENDING = "DELETE FROM oauth_pending WHERE record_id = ? RETURNING sealed, expires_at"
# A used record's marker: an empty sealed text under an id no record can have.
CLAIM_PENDING = """
INSERT INTO oauth_pending (record_id, sealed, expires_at) VALUES (?, '', ?)
ON CONFLICT (record_id) DO NOTHING
"""
SCHEMA_REVISION = "SELECT version_num FROM alembic_version"


def to_text(moment: datetime | None) -> str | None:
    return None if moment is None else moment.astimezone(UTC).isoformat(timespec="microseconds")


def from_text(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text)


def key_params(key: TokenKey) -> tuple[str, str, str]:
    return (key.provider, key.workspace_id, key.actor_id)


def sealed_row(found: Sequence[Any]) -> SealedRow:
    """A :class:`SealedRow` from a row's sealed columns (SELECT_ROW's, in its order)."""
    access, refresh, key_id, expires_at, scope, params, response, issued_at, version = found
    return SealedRow(
        access,
        refresh,
        key_id,
        from_text(expires_at),
        scope,
        params,
        response,
        from_text(issued_at),
        version,
    )


def locked_state(
    found: Sequence[Any],
) -> tuple[SealedRow, str, RefreshLease | None, str | None]:
    """The row, status, lease and last error of a LOCK_ROW result."""
    owner, until = found[10], from_text(found[11])
    lease = None if owner is None or until is None else RefreshLease(owner, until)
    return sealed_row(found[:9]), found[9], lease, found[12]


def upsert_params(key: TokenKey, row: SealedRow, now: datetime) -> tuple[Any, ...]:
    stamp = to_text(now)
    return (
        uuid.uuid4().hex,
        *key_params(key),
        row.access_token_encrypted,
        row.refresh_token_encrypted,
        row.key_id,
        to_text(row.expires_at),
        row.scope,
        row.params,
        row.response_encrypted,
        to_text(row.issued_at),
        stamp,
        stamp,
    )


def save_refreshed(
    key: TokenKey, row: SealedRow | None, save: RefreshSave, now: datetime
) -> tuple[str, tuple[Any, ...]]:
    """The compare-and-set that saves a refresh's outcome: new tokens (``row``) or only a
    status."""
    guard = (*key_params(key), save.version, save.owner)
    if row is None:
        return SAVE_REFRESH_STATUS, (save.status, save.last_error, to_text(now), *guard)
    return SAVE_REFRESHED_TOKENS, (
        row.access_token_encrypted,
        row.refresh_token_encrypted,
        row.key_id,
        to_text(row.expires_at),
        row.scope,
        row.params,
        row.response_encrypted,
        to_text(row.issued_at),
        save.status,
        save.last_error,
        to_text(save.refreshed_at),
        to_text(now),
        *guard,
    )


def stored_connection(found: Sequence[Any]) -> StoredConnection:
    (
        provider,
        workspace_id,
        actor_id,
        expires_at,
        scope,
        has_refresh,
        key_id,
        updated,
        status,
        refreshed,
        last_error,
        params,
    ) = found
    return StoredConnection(
        provider=provider,
        workspace_id=workspace_id,
        actor_id=actor_id,
        expires_at=from_text(expires_at),
        scope=scope,
        has_refresh_token=bool(has_refresh),
        key_id=key_id,
        updated_at=datetime.fromisoformat(updated),
        status=status,
        last_refreshed_at=from_text(refreshed),
        last_error=last_error,
        params=decode_params(params),
    )
