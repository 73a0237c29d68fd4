"""API keys for the server-to-server API: configured as SHA-256 hashes, never in clear."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = ["ApiKey", "ApiKeyRing", "generate_api_key", "hash_api_key"]

_PREFIX = "ovk_"


def generate_api_key() -> str:
    """A new random API key (256 bits), recognisable by its ``ovk_`` prefix."""
    return _PREFIX + secrets.token_urlsafe(32)


def hash_api_key(key: str) -> str:
    """The hex SHA-256 that the configuration keeps instead of the key."""
    return hashlib.sha256(key.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class ApiKey:
    """One configured key: a name for logs, its hash, the workspaces it may touch
    (``None``: all), and whether it may use the app's own client for client-credentials
    connections (``app_client_credentials``; a key for all workspaces always may)."""

    name: str
    sha256: str
    workspaces: frozenset[str] | None = None
    app_client_credentials: bool = False

    def allows(self, workspace_id: str) -> bool:
        return self.workspaces is None or workspace_id in self.workspaces

    @property
    def may_use_app_client(self) -> bool:
        """Whether it may fetch tokens with the app's own client (the client-credentials
        grant): a key for all workspaces, or one configured to."""
        return self.workspaces is None or self.app_client_credentials


class ApiKeyRing:
    """Looks presented keys up by hash, comparing in constant time."""

    def __init__(self, keys: Iterable[ApiKey]) -> None:
        self._keys = list(keys)

    def __len__(self) -> int:
        return len(self._keys)

    @property
    def names(self) -> frozenset[str]:
        """The configured keys' names."""
        return frozenset(key.name for key in self._keys)

    def authenticate(self, presented: str) -> ApiKey | None:
        digest = hash_api_key(presented)
        found = None
        for key in self._keys:  # no early exit: timing says nothing about which key matched
            if hmac.compare_digest(digest, key.sha256):
                found = key
        return found
