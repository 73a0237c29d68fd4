"""One-time records (OAuth states, connect links): sealed, stored, taken exactly once.

The secret handed out (the ``state`` parameter, a link token) is never stored: records are
keyed by the SHA-256 of kind and secret, and their payload is sealed with the key ring and
bound to that id. Taking a record deletes it in the same atomic command (Redis ``GETDEL``
or SQL ``DELETE … RETURNING``), so two concurrent callbacks cannot both use one state.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Generator
from datetime import datetime
from typing import Any

from oauthvault.crypto.envelope import open_sealed, seal
from oauthvault.crypto.keyring import KeyRing
from oauthvault.errors import DecryptionError
from oauthvault.steps import SavePending, Step, TakePending

__all__ = ["MAX_SECRET_LENGTH", "new_secret", "save_record", "take_record"]

# 256 random bits, url-safe: 43 characters.
SECRET_BYTES = 32
MAX_SECRET_LENGTH = 128
_DOMAIN = b"oauthvault/v1\x00pending\x00"

Flow = Generator[Step, Any, Any]


def new_secret() -> str:
    return secrets.token_urlsafe(SECRET_BYTES)


def record_id(kind: str, secret: str) -> str:
    return hashlib.sha256(f"{kind}\x00{secret}".encode()).hexdigest()


def save_record(keyring: KeyRing, kind: str, payload: dict[str, Any], expires_at: datetime) -> Flow:
    """Seal ``payload`` and keep it until ``expires_at``; the flow returns the secret."""
    secret = new_secret()
    identity = record_id(kind, secret)
    body = json.dumps({**payload, "expires_at": expires_at.isoformat()}).encode()
    sealed = seal(keyring, body, _DOMAIN + identity.encode())
    yield SavePending(identity, sealed.hex(), expires_at)
    return secret


def take_record(keyring: KeyRing, kind: str, secret: object, now: datetime) -> Flow:
    """Take the record behind ``secret`` (deleting it); the flow returns its payload, or
    ``None`` if it is unknown, already taken, expired or not readable."""
    if not isinstance(secret, str) or not secret or len(secret) > MAX_SECRET_LENGTH:
        return None
    identity = record_id(kind, secret)
    sealed = yield TakePending(identity)
    if sealed is None:
        return None
    try:
        body = open_sealed(keyring, bytes.fromhex(sealed), _DOMAIN + identity.encode())
    except (DecryptionError, ValueError):
        return None
    payload: dict[str, Any] = json.loads(body)
    if datetime.fromisoformat(payload.pop("expires_at")) <= now:
        return None
    return payload
