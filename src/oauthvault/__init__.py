"""oauthvault: an OAuth token vault for multi-tenant SaaS backends.

Tokens are sealed with AES-256-GCM, bound to their connection, stored in PostgreSQL or
an embedded SQLite file, and cached (still sealed) in Redis when one is configured.
"""

from oauthvault.config import Settings
from oauthvault.crypto.keyring import KeyRing, generate_key
from oauthvault.errors import (
    ClientRejected,
    ConfigError,
    DecryptionError,
    FlowError,
    InvalidCredentials,
    InvalidInput,
    InvalidState,
    ProviderError,
    ReauthorizationRequired,
    SchemaOutdated,
    StorageUnavailable,
    TokenNotFound,
    UnknownProvider,
    VaultError,
    WrongCredentialKind,
)
from oauthvault.models import ConnectionEvent, Credentials, StoredConnection, TokenKey, TokenSet
from oauthvault.vault import (
    AsyncOAuthTokenCache,
    CacheInfo,
    DeleteOutcome,
    OAuthTokenCache,
    RotationReport,
)

__all__ = [
    "AsyncOAuthTokenCache",
    "CacheInfo",
    "ClientRejected",
    "ConfigError",
    "ConnectionEvent",
    "Credentials",
    "DecryptionError",
    "DeleteOutcome",
    "FlowError",
    "InvalidCredentials",
    "InvalidInput",
    "InvalidState",
    "KeyRing",
    "OAuthTokenCache",
    "ProviderError",
    "ReauthorizationRequired",
    "RotationReport",
    "SchemaOutdated",
    "Settings",
    "StorageUnavailable",
    "StoredConnection",
    "TokenKey",
    "TokenNotFound",
    "TokenSet",
    "UnknownProvider",
    "VaultError",
    "WrongCredentialKind",
    "generate_key",
]

__version__ = "0.1.0"


def __getattr__(name: str) -> object:
    # The old name of StoredConnection, kept importable for code written against it.
    if name == "ConnectionInfo":
        import warnings

        warnings.warn(
            "oauthvault.ConnectionInfo is now oauthvault.StoredConnection",
            DeprecationWarning,
            stacklevel=2,
        )
        return StoredConnection
    raise AttributeError(f"module 'oauthvault' has no attribute {name!r}")
