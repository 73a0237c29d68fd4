"""The SQL of the PostgreSQL stores, and the conversions of its rows (no I/O)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from oauthvault.crypto.sealing import SealedRow
from oauthvault.errors import SchemaOutdated
from oauthvault.models import StoredConnection, TokenKey, decode_params
from oauthvault.storage.base import RefreshLease, RefreshSave
from oauthvault.storage.migrations import HEAD_REVISION

__all__ = [
    "CLEAR_INVALIDATIONS",
    "COUNT_BY_KEY",
    "COUNT_BY_STATUS",
    "DELETE_ROW",
    "EXPIRING",
    "IDLE",
    "LIST_ROWS",
    "LOCK_ROW",
    "LOCK_TIMEOUT",
    "NIL_UUID",
    "NOTIFY",
    "PENDING_INVALIDATIONS",
    "PUT_PENDING",
    "RECORD_INVALIDATIONS",
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
    "check_revision",
    "key_params",
    "locked_state",
    "save_refreshed",
    "sealed_row",
    "stored_connection",
    "upsert_params",
    "utc",
]

SELECT_ROW = """
SELECT access_token_encrypted, refresh_token_encrypted, key_id, expires_at, scope,
    connection_params, token_response_encrypted, issued_at, version
FROM oauth_tokens WHERE provider = %s AND workspace_id = %s AND actor_id = %s
"""
UPSERT_ROW = """
INSERT INTO oauth_tokens (id, provider, workspace_id, actor_id, access_token_encrypted,
    refresh_token_encrypted, key_id, expires_at, scope, connection_params,
    token_response_encrypted, issued_at, created_at, updated_at, version)
VALUES (gen_random_uuid(), %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s,
    nextval('oauth_tokens_version_seq'))
ON CONFLICT (provider, workspace_id, actor_id) DO UPDATE SET
    access_token_encrypted = EXCLUDED.access_token_encrypted,
    refresh_token_encrypted = EXCLUDED.refresh_token_encrypted,
    key_id = EXCLUDED.key_id,
    expires_at = EXCLUDED.expires_at,
    scope = EXCLUDED.scope,
    connection_params = EXCLUDED.connection_params,
    token_response_encrypted = EXCLUDED.token_response_encrypted,
    issued_at = EXCLUDED.issued_at,
    status = 'active',
    last_error = NULL,
    updated_at = EXCLUDED.updated_at,
    version = nextval('oauth_tokens_version_seq'),  -- taken after the row lock: in order
    refresh_lease_owner = NULL,
    refresh_lease_until = NULL
RETURNING version
"""
DELETE_ROW = """
DELETE FROM oauth_tokens WHERE provider = %s AND workspace_id = %s AND actor_id = %s
RETURNING version
"""
LIST_ROWS = """
SELECT provider, workspace_id, actor_id, expires_at, scope,
    refresh_token_encrypted IS NOT NULL, key_id, updated_at, status, last_refreshed_at,
    last_error, connection_params
FROM oauth_tokens
WHERE (%(provider)s::text IS NULL OR provider = %(provider)s)
  AND (%(workspace_id)s::text IS NULL OR workspace_id = %(workspace_id)s)
  AND (%(actor_id)s::text IS NULL OR actor_id = %(actor_id)s)
  AND (%(status)s::text IS NULL OR status = %(status)s)
  AND (provider, workspace_id, actor_id)
    > (%(after_provider)s, %(after_workspace_id)s, %(after_actor_id)s)
ORDER BY provider, workspace_id, actor_id
LIMIT %(limit)s
"""
COUNT_BY_KEY = "SELECT key_id, count(*) FROM oauth_tokens GROUP BY key_id"
COUNT_BY_STATUS = "SELECT provider, status, count(*) FROM oauth_tokens GROUP BY provider, status"
SELECT_FOR_ROTATION = """
SELECT id, provider, workspace_id, actor_id, access_token_encrypted,
    refresh_token_encrypted, key_id, expires_at, scope, connection_params,
    token_response_encrypted, issued_at, version
FROM oauth_tokens
WHERE key_id <> %s AND id > %s
ORDER BY id
LIMIT %s
FOR UPDATE
"""
UPDATE_SEALED = """
UPDATE oauth_tokens
SET access_token_encrypted = %s, refresh_token_encrypted = %s, key_id = %s,
    token_response_encrypted = %s, version = nextval('oauth_tokens_version_seq')
WHERE id = %s
"""
RECORD_INVALIDATIONS = """
INSERT INTO oauth_cache_invalidations (cache_key, recorded_at)
SELECT unnest(%s::text[]), %s ON CONFLICT DO NOTHING
"""
PENDING_INVALIDATIONS = "SELECT cache_key FROM oauth_cache_invalidations LIMIT %s"
CLEAR_INVALIDATIONS = "DELETE FROM oauth_cache_invalidations WHERE cache_key = ANY(%s)"
SCHEMA_REVISION = "SELECT version_num FROM alembic_version"
LOCK_ROW = """
SELECT access_token_encrypted, refresh_token_encrypted, key_id, expires_at, scope,
    connection_params, token_response_encrypted, issued_at, version, status,
    refresh_lease_owner, refresh_lease_until, last_error
FROM oauth_tokens WHERE provider = %s AND workspace_id = %s AND actor_id = %s
FOR UPDATE
"""
UPDATE_LOCKED_STATUS = """
UPDATE oauth_tokens SET status = %s, last_error = %s, updated_at = %s,
    version = nextval('oauth_tokens_version_seq')
WHERE provider = %s AND workspace_id = %s AND actor_id = %s
"""
# Taking the lease moves the version: a refresher whose lease ran out and was taken over
# can no longer save over its successor (its guard names the version it leased at).
TAKE_LEASE = """
UPDATE oauth_tokens SET refresh_lease_owner = %s, refresh_lease_until = %s,
    version = nextval('oauth_tokens_version_seq')
WHERE provider = %s AND workspace_id = %s AND actor_id = %s
RETURNING version
"""
RELEASE_LEASE = """
UPDATE oauth_tokens SET refresh_lease_owner = NULL, refresh_lease_until = NULL
WHERE provider = %s AND workspace_id = %s AND actor_id = %s AND refresh_lease_owner = %s
"""
# A refresh's result is saved only over the version it started from, or while it still
# holds its lease (a re-seal by key rotation bumps the version, not the lease); either way
# nothing written since by anyone else (a reconnect, another refresher) is overwritten.
SAVE_REFRESHED_TOKENS = """
UPDATE oauth_tokens SET access_token_encrypted = %s, refresh_token_encrypted = %s,
    key_id = %s, expires_at = %s, scope = %s, connection_params = %s,
    token_response_encrypted = %s, issued_at = %s, status = %s, last_error = %s,
    last_refreshed_at = %s, updated_at = %s, version = nextval('oauth_tokens_version_seq'),
    refresh_lease_owner = NULL, refresh_lease_until = NULL
WHERE provider = %s AND workspace_id = %s AND actor_id = %s
  AND (version = %s OR refresh_lease_owner = %s)
RETURNING version
"""
SAVE_REFRESH_STATUS = """
UPDATE oauth_tokens SET status = %s, last_error = %s, updated_at = %s,
    version = nextval('oauth_tokens_version_seq'),
    refresh_lease_owner = NULL, refresh_lease_until = NULL
WHERE provider = %s AND workspace_id = %s AND actor_id = %s
  AND (version = %s OR refresh_lease_owner = %s)
RETURNING version
"""
EXPIRING = """
SELECT provider, workspace_id, actor_id FROM oauth_tokens
WHERE status IN ('active', 'degraded') AND refresh_token_encrypted IS NOT NULL
  AND expires_at < %s
ORDER BY expires_at
LIMIT %s
"""
IDLE = """
SELECT provider, workspace_id, actor_id FROM oauth_tokens
WHERE provider = %s AND status IN ('active', 'degraded')
  AND refresh_token_encrypted IS NOT NULL
  AND coalesce(last_refreshed_at, updated_at) < %s
ORDER BY coalesce(last_refreshed_at, updated_at)
LIMIT %s
"""
# The row lock is held for a read and a write (never across a provider call): a refresher
# waits this long for it before giving up with StorageUnavailable.
LOCK_TIMEOUT = "SET LOCAL lock_timeout = '10s'"
PUT_PENDING = """
WITH purged AS (DELETE FROM oauth_pending WHERE expires_at < %s)
INSERT INTO oauth_pending (record_id, sealed, expires_at) VALUES (%s, %s, %s)
"""
TAKE_PENDING = "DELETE FROM oauth_pending WHERE record_id = %s RETURNING sealed, expires_at"
# A used record's marker: an empty sealed text under an id no record can have.
CLAIM_PENDING = """
WITH purged AS (DELETE FROM oauth_pending WHERE expires_at < %s)
INSERT INTO oauth_pending (record_id, sealed, expires_at) VALUES (%s, '', %s)
ON CONFLICT (record_id) DO NOTHING
"""
NIL_UUID = uuid.UUID(int=0)
NOTIFY = "SELECT pg_notify(%s, %s)"


def key_params(key: TokenKey) -> tuple[str, str, str]:
    return (key.provider, key.workspace_id, key.actor_id)


def upsert_params(key: TokenKey, row: SealedRow, now: datetime) -> tuple[Any, ...]:
    return (
        key.provider,
        key.workspace_id,
        key.actor_id,
        row.access_token_encrypted,
        row.refresh_token_encrypted,
        row.key_id,
        row.expires_at,
        row.scope,
        row.params,
        row.response_encrypted,
        row.issued_at,
        now,
        now,
    )


def utc(moment: datetime | None) -> datetime | None:
    # timestamptz comes back in the session's time zone; the vault speaks UTC.
    return None if moment is None else moment.astimezone(UTC)


def sealed_row(found: Sequence[Any]) -> SealedRow:
    """A :class:`SealedRow` from a row's sealed columns (SELECT_ROW's, in its order)."""
    access, refresh, key_id, expires_at, scope, params, response, issued_at, version = found
    return SealedRow(
        access, refresh, key_id, utc(expires_at), scope, params, response, utc(issued_at), version
    )


def locked_state(
    found: Sequence[Any],
) -> tuple[SealedRow, str, RefreshLease | None, str | None]:
    """The row, status, lease and last error of a :data:`LOCK_ROW` result."""
    owner, until = found[10], found[11]
    lease = None if owner is None or until is None else RefreshLease(owner, until.astimezone(UTC))
    return sealed_row(found[:9]), found[9], lease, found[12]


def save_refreshed(
    key: TokenKey,
    row: SealedRow | None,
    save: RefreshSave,
    now: datetime,
) -> tuple[str, tuple[Any, ...]]:
    """The compare-and-set that saves a refresh's outcome: new tokens (``row``) or only a
    status."""
    guard = (*key_params(key), save.version, save.owner)
    if row is None:
        return SAVE_REFRESH_STATUS, (save.status, save.last_error, now, *guard)
    return SAVE_REFRESHED_TOKENS, (
        row.access_token_encrypted,
        row.refresh_token_encrypted,
        row.key_id,
        row.expires_at,
        row.scope,
        row.params,
        row.response_encrypted,
        row.issued_at,
        save.status,
        save.last_error,
        save.refreshed_at,
        now,
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
        expires_at=utc(expires_at),
        scope=scope,
        has_refresh_token=has_refresh,
        key_id=key_id,
        updated_at=updated.astimezone(UTC),
        status=status,
        last_refreshed_at=utc(refreshed),
        last_error=last_error,
        params=decode_params(params),
    )


def check_revision(revision: str | None, description: str) -> None:
    if revision != HEAD_REVISION:
        found = "no schema" if revision is None else f"schema revision {revision}"
        raise SchemaOutdated(
            f"{description} has {found}, this version needs {HEAD_REVISION}:"
            " run `oauthvault migrate`"
        )
