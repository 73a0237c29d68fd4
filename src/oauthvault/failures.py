"""What kind of failure a :class:`~oauthvault.errors.VaultError` is: the one classification
that every answer to an error starts from.

The HTTP API's problem details, the connect flow's pages, the admin console's pages and
the audit trail's outcomes each map a :class:`FailureKind` to their own presentation;
none of them tests error classes itself. Pure: no I/O.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from oauthvault.errors import (
    ClientRejected,
    ConfigError,
    DecryptionError,
    InvalidCredentials,
    InvalidInput,
    InvalidState,
    ProviderError,
    ReauthorizationRequired,
    StorageUnavailable,
    TokenNotFound,
    UnknownProvider,
    VaultError,
    WrongCredentialKind,
)

__all__ = ["Failure", "FailureKind", "classify"]


class FailureKind(enum.StrEnum):
    """The kinds of failure, one per error class that callers answer differently."""

    INVALID_INPUT = "invalid_input"
    INVALID_STATE = "invalid_state"
    UNKNOWN_PROVIDER = "unknown_provider"
    NOT_FOUND = "not_found"
    REAUTHORIZATION_REQUIRED = "reauthorization_required"
    #: The provider refused the app's own client: the app's configuration is wrong.
    CLIENT_REJECTED = "client_rejected"
    #: The provider refused a credential being stored (its verification said 401/403).
    INVALID_CREDENTIALS = "invalid_credentials"
    #: The connection holds another kind of credential than the call needs.
    WRONG_CREDENTIAL_KIND = "wrong_credential_kind"
    PROVIDER_ERROR = "provider_error"
    STORAGE_UNAVAILABLE = "storage_unavailable"
    DECRYPTION_ERROR = "decryption_error"
    CONFIG_ERROR = "config_error"
    #: A ``VaultError`` (or ``FlowError``) of no more specific class.
    OTHER = "other"


# Looked up along the error's MRO, so the most specific class wins: a
# ReauthorizationRequired is never a plain provider_error, a SchemaOutdated is a
# storage_unavailable.
_KINDS: dict[type[VaultError], FailureKind] = {
    InvalidInput: FailureKind.INVALID_INPUT,
    InvalidState: FailureKind.INVALID_STATE,
    UnknownProvider: FailureKind.UNKNOWN_PROVIDER,
    TokenNotFound: FailureKind.NOT_FOUND,
    ReauthorizationRequired: FailureKind.REAUTHORIZATION_REQUIRED,
    ClientRejected: FailureKind.CLIENT_REJECTED,
    InvalidCredentials: FailureKind.INVALID_CREDENTIALS,
    WrongCredentialKind: FailureKind.WRONG_CREDENTIAL_KIND,
    ProviderError: FailureKind.PROVIDER_ERROR,
    StorageUnavailable: FailureKind.STORAGE_UNAVAILABLE,
    DecryptionError: FailureKind.DECRYPTION_ERROR,
    ConfigError: FailureKind.CONFIG_ERROR,
}


@dataclass(frozen=True, slots=True)
class Failure:
    """A classified error: its kind and the data its answers show (never a secret: the
    errors carry none).

    ``argument`` and ``problem`` are set for ``invalid_input``; ``provider_error`` (the
    RFC 6749 error code) and ``description`` (the provider's ``error_description``, made
    fit to show) for ``provider_error``, ``client_rejected`` and
    ``reauthorization_required``;
    ``other_browser`` is true for an ``invalid_state`` issued to another browser.
    """

    kind: FailureKind
    argument: str | None = None
    problem: str | None = None
    provider_error: str | None = None
    description: str | None = None
    other_browser: bool = False


def classify(error: VaultError) -> Failure:
    """The kind of ``error`` and the data that goes with it."""
    kind = next((_KINDS[cls] for cls in type(error).__mro__ if cls in _KINDS), FailureKind.OTHER)
    if isinstance(error, InvalidInput):
        return Failure(kind, argument=error.argument, problem=error.problem)
    if isinstance(error, ProviderError):
        return Failure(kind, provider_error=error.error, description=error.error_description)
    if isinstance(error, InvalidState):
        return Failure(kind, other_browser=error.other_browser)
    return Failure(kind)
