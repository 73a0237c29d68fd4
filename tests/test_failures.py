import pytest

from oauthvault.errors import (
    ConfigError,
    DecryptionError,
    FlowError,
    InvalidInput,
    InvalidState,
    ProviderError,
    ReauthorizationRequired,
    SchemaOutdated,
    StorageUnavailable,
    TokenNotFound,
    UnknownProvider,
    VaultError,
)
from oauthvault.failures import FailureKind, classify


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        (InvalidInput("limit", "too big"), FailureKind.INVALID_INPUT),
        (InvalidState("reused"), FailureKind.INVALID_STATE),
        (UnknownProvider("nope"), FailureKind.UNKNOWN_PROVIDER),
        (TokenNotFound("gone"), FailureKind.NOT_FOUND),
        (ReauthorizationRequired("invalid_grant"), FailureKind.REAUTHORIZATION_REQUIRED),
        (ProviderError("server_error"), FailureKind.PROVIDER_ERROR),
        (StorageUnavailable("down"), FailureKind.STORAGE_UNAVAILABLE),
        (SchemaOutdated("old"), FailureKind.STORAGE_UNAVAILABLE),
        (DecryptionError(), FailureKind.DECRYPTION_ERROR),
        (ConfigError("DATABASE_URL", "missing"), FailureKind.CONFIG_ERROR),
        (FlowError("stopped"), FailureKind.OTHER),
        (VaultError("?"), FailureKind.OTHER),
    ],
)
def test_the_most_specific_error_class_decides_the_kind(error, kind):
    assert classify(error).kind is kind


def test_a_failure_carries_what_its_answers_show():
    invalid = classify(InvalidInput("limit", "must be from 1 to 1000"))
    assert (invalid.argument, invalid.problem) == ("limit", "must be from 1 to 1000")
    assert classify(ReauthorizationRequired("invalid_grant", "gone")).provider_error == (
        "invalid_grant"
    )
    assert classify(InvalidState("other", other_browser=True)).other_browser is True
    assert classify(TokenNotFound("gone")).provider_error is None
