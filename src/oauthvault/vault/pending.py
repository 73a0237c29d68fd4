"""One-time records (OAuth states, connect links): sealed, stored, taken exactly once.

The secret handed out (the ``state`` parameter, a link token) is never stored: records are
keyed by the SHA-256 of kind and secret, and their payload is sealed with the key ring and
bound to that id. A record lives in Redis while Redis answers, else in the database; taking
it deletes it in the same atomic command (Redis ``GETDEL`` or SQL ``DELETE … RETURNING``),
so two concurrent callbacks cannot both use one state.

Redis alone cannot make single use hold: someone who can write it can put a taken value
back. So a record taken from Redis is also claimed in the database (a marker row under a
second id, kept until the record would have expired, written with ``INSERT … ON CONFLICT DO
NOTHING``): a second claim finds the marker and the record counts as used. Only records
that opened (sealed by this vault, for this id, unexpired) are claimed, so unknown secrets
cost no database write.

These flows have no I/O: ``PendingRecords`` and ``AsyncPendingRecords``
(:mod:`oauthvault.vault.pending_records`, from ``vault.pending_records(kind, ttl)``) run
them, and are what the connect states and the connect links use.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from oauthvault.cache.keys import pending_cache_key
from oauthvault.crypto.envelope import open_sealed, seal
from oauthvault.errors import DecryptionError
from oauthvault.vault.flows import VaultCore
from oauthvault.vault.steps import (
    ClaimPendingRow,
    Flow,
    PutPendingRow,
    TakeCached,
    TakePendingRow,
    WriteCache,
)

__all__ = ["MAX_SECRET_LENGTH", "SavedRecord", "save_record", "take_record"]

# 256 random bits, url-safe: 43 characters.
SECRET_BYTES = 32
MAX_SECRET_LENGTH = 128
_DOMAIN = b"oauthvault/v1\x00pending\x00"

logger = logging.getLogger("oauthvault.vault")


def record_id(kind: str, secret: str) -> str:
    return hashlib.sha256(f"{kind}\x00{secret}".encode()).hexdigest()


def used_id(identity: str) -> str:
    """The id of the marker saying the record ``identity`` was used: another SHA-256, so
    it never names a record (whose ids hash a kind, a NUL and a secret)."""
    return hashlib.sha256(b"oauthvault/v1\x00used\x00" + identity.encode()).hexdigest()


def pending_ttl(expires_at: datetime, now: datetime) -> int:
    """Whole seconds a one-time record stays in Redis: at least one, rounded up."""
    return max(1, math.ceil((expires_at - now).total_seconds()))


def save_record(core: VaultCore, kind: str, payload: dict[str, Any], expires_at: datetime) -> Flow:
    """Seal ``payload`` and keep it until ``expires_at``, in Redis when it takes it, else in
    the database; the flow returns the secret."""
    secret = secrets.token_urlsafe(SECRET_BYTES)
    identity = record_id(kind, secret)
    body = json.dumps({**payload, "expires_at": expires_at.isoformat()}).encode()
    sealed = seal(core.keyring, body, _DOMAIN + identity.encode(), "pending-record").hex()
    if core.has_cache:
        ttl = pending_ttl(expires_at, core.clock())
        if (yield WriteCache(pending_cache_key(identity), sealed.encode(), ttl)):
            return secret
    yield PutPendingRow(identity, sealed, expires_at)
    return secret


def take_record(core: VaultCore, kind: str, secret: object) -> Flow:
    """Take the record behind ``secret`` (deleting it) from Redis, else the database; the
    flow returns its payload, or ``None`` if unknown, already taken, expired or unreadable.
    A record from Redis is claimed in the database first (see the module's docstring)."""
    if not isinstance(secret, str) or not secret or len(secret) > MAX_SECRET_LENGTH:
        return None
    identity = record_id(kind, secret)
    sealed: str | None = None
    if core.has_cache:
        found = yield TakeCached(pending_cache_key(identity))
        sealed = None if found is None else found.decode()
    from_redis = sealed is not None
    if sealed is None:
        sealed = yield TakePendingRow(identity)
    if sealed is None:
        return None
    try:
        body = open_sealed(
            core.keyring, bytes.fromhex(sealed), _DOMAIN + identity.encode(), "pending-record"
        )
    except (DecryptionError, ValueError):
        return None
    payload: dict[str, Any] = json.loads(body)
    expires_at = datetime.fromisoformat(payload.pop("expires_at"))
    if expires_at <= core.clock():
        return None
    if from_redis and not (yield ClaimPendingRow(used_id(identity), expires_at)):
        logger.warning("one-time %s record %s was used before: refused", kind, identity[:12])
        return None
    return payload


@dataclass(frozen=True, slots=True)
class SavedRecord:
    """The secret to hand out for a new record, and when the record expires."""

    secret: str
    expires_at: datetime
