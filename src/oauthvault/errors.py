"""Errors raised by oauthvault.

Every error derives from :class:`VaultError`; none of them ever carries a token,
a key or a password in its message.

    VaultError
    ├── ConfigError          names the setting, never its value
    ├── InvalidInput         names the argument and the rule it broke (also a ValueError)
    ├── DecryptionError      says nothing more (like fernet's InvalidToken)
    ├── TokenNotFound
    ├── WrongCredentialKind  a connection holds another kind of credential
    ├── StorageUnavailable
    └── FlowError
        ├── InvalidState     unknown, expired or reused
        ├── UnknownProvider  no provider of that name is configured
        └── ProviderError    .error, .error_description (RFC 6749 §5.2)
            ├── ReauthorizationRequired   invalid_grant on refresh
            └── InvalidCredentials        the provider refused a credential (401/403)
"""

from __future__ import annotations

__all__ = [
    "ConfigError",
    "DecryptionError",
    "FlowError",
    "InvalidCredentials",
    "InvalidInput",
    "InvalidState",
    "ProviderError",
    "ReauthorizationRequired",
    "SchemaOutdated",
    "StorageUnavailable",
    "TokenNotFound",
    "UnknownProvider",
    "VaultError",
    "WrongCredentialKind",
]


class VaultError(Exception):
    """Base class of every error oauthvault raises on purpose."""


class ConfigError(VaultError):
    """A setting is missing or malformed. ``.setting`` names it; its value is never shown."""

    def __init__(self, setting: str, problem: str) -> None:
        self.setting = setting
        self.problem = problem
        super().__init__(f"{setting}: {problem}")


class InvalidInput(VaultError, ValueError):
    """An argument broke a rule. ``.argument`` names it; secret values are never shown."""

    def __init__(self, argument: str, problem: str) -> None:
        self.argument = argument
        self.problem = problem
        super().__init__(f"{argument}: {problem}")


class DecryptionError(VaultError):
    """A ciphertext could not be authenticated: wrong key, wrong row, or tampered."""

    def __init__(self) -> None:
        super().__init__("ciphertext could not be decrypted")


class TokenNotFound(VaultError):
    """No tokens are stored for the requested connection."""


class WrongCredentialKind(VaultError):
    """The connection holds another kind of credential than the call needs: an API key
    or a password has no access token (read it with ``get_credentials``), an OAuth
    connection has no credential fields. ``.kind`` is the kind it holds."""

    def __init__(self, kind: str, message: str) -> None:
        self.kind = kind
        super().__init__(message)


class StorageUnavailable(VaultError):
    """The database could not be reached or refused the operation."""


class SchemaOutdated(StorageUnavailable):
    """The database answers, but its schema is not this version's: run ``oauthvault
    migrate``."""


class FlowError(VaultError):
    """An OAuth flow could not go on."""


class InvalidState(FlowError):
    """The OAuth ``state`` is unknown, expired, already used, or bound to something else.
    ``.other_browser`` is true when it is valid but was issued to another browser."""

    def __init__(self, message: str, *, other_browser: bool = False) -> None:
        self.other_browser = other_browser
        super().__init__(message)


class UnknownProvider(FlowError):
    """No provider of that name is configured. ``.name`` is the name asked for."""

    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(f"provider {name!r} is not configured")


class ProviderError(FlowError):
    """The provider answered with an OAuth error (RFC 6749 §5.2)."""

    def __init__(self, error: str, error_description: str | None = None) -> None:
        self.error = error
        self.error_description = error_description
        message = error if not error_description else f"{error}: {error_description}"
        super().__init__(message)


class ReauthorizationRequired(ProviderError):
    """The grant is gone (``invalid_grant``): the user must connect again."""


class ClientRejected(ProviderError):
    """The provider refused the app's own client (``invalid_client``,
    ``unauthorized_client``): the app's configuration is wrong (client id, secret, the
    grant types the client may use), not the user's grant. No refresh is sent for the
    provider again until its configuration changes or a backoff passes."""


class InvalidCredentials(ProviderError):
    """The provider refused a credential (its verification answered 401 or 403, or a
    token could not be minted with it): nothing new is stored; a stored one is marked
    ``needs_reauth``."""


for _error in (
    VaultError,
    ConfigError,
    InvalidInput,
    DecryptionError,
    TokenNotFound,
    StorageUnavailable,
    SchemaOutdated,
    FlowError,
    InvalidState,
    UnknownProvider,
    ProviderError,
    ReauthorizationRequired,
    ClientRejected,
    InvalidCredentials,
    WrongCredentialKind,
):
    _error.__module__ = "oauthvault"
