"""oauthvault: an OAuth token vault for multi-tenant SaaS backends.

Tokens are sealed with AES-256-GCM, bound to their connection, stored in PostgreSQL or
an embedded SQLite file, and cached (still sealed) in Redis when one is configured.
"""

from oauthvault.async_vault import AsyncOAuthTokenCache
from oauthvault.config import Settings
from oauthvault.crypto.keyring import KeyRing, generate_key
from oauthvault.errors import (
    ConfigError,
    DecryptionError,
    FlowError,
    InvalidInput,
    InvalidState,
    ProviderError,
    ReauthorizationRequired,
    StorageUnavailable,
    TokenNotFound,
    UnknownProvider,
    VaultError,
)
from oauthvault.models import TokenKey, TokenSet
from oauthvault.storage.base import ConnectionInfo
from oauthvault.vault import OAuthTokenCache
from oauthvault.vault_base import DeleteOutcome, RotationReport

__all__ = [
    "AsyncOAuthTokenCache",
    "ConfigError",
    "ConnectionInfo",
    "DecryptionError",
    "DeleteOutcome",
    "FlowError",
    "InvalidInput",
    "InvalidState",
    "KeyRing",
    "OAuthTokenCache",
    "ProviderError",
    "ReauthorizationRequired",
    "RotationReport",
    "Settings",
    "StorageUnavailable",
    "TokenKey",
    "TokenNotFound",
    "TokenSet",
    "UnknownProvider",
    "VaultError",
    "generate_key",
]

__version__ = "0.1.0"
