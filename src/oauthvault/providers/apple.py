"""Sign in with Apple's client secret: a short-lived ES256 JWT signed with the team's key.

Apple issues no static client secret. Each token request sends a JWT (``iss`` = Team ID,
``sub`` = Services ID, ``aud`` = ``https://appleid.apple.com``, header ``kid`` = Key ID)
signed with the P-256 key downloaded from the developer account. Time is a parameter.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from joserfc import jwt
from joserfc.jwk import ECKey

from oauthvault.errors import ConfigError, InvalidInput

__all__ = [
    "APPLE_AUDIENCE",
    "DEFAULT_LIFETIME",
    "MAX_LIFETIME",
    "apple_client_secret",
    "check_apple_id",
    "load_apple_key",
]

APPLE_AUDIENCE = "https://appleid.apple.com"
#: Apple rejects a secret whose ``exp`` is more than 15,777,000 s (six months) after now.
MAX_LIFETIME = timedelta(seconds=15_777_000)
#: A secret is cheap to sign; a short one limits what a leaked copy is worth.
DEFAULT_LIFETIME = timedelta(hours=1)
# Team IDs and Key IDs are both 10 characters, uppercase letters and digits.
_APPLE_ID = re.compile(r"^[A-Z0-9]{10}$")


def check_apple_id(value: str, setting: str) -> str:
    """Return ``value`` if it looks like an Apple Team ID or Key ID (10 of ``A-Z 0-9``).

    Raises:
        ConfigError: naming ``setting``.
    """
    if not isinstance(value, str) or not _APPLE_ID.match(value):
        raise ConfigError(setting, "must be 10 uppercase letters or digits")
    return value


def load_apple_key(private_key_pem: str, setting: str = "providers.apple.private_key") -> ECKey:
    """Load Apple's P-256 signing key from PEM (the downloaded ``.p8`` file's text).

    Raises:
        ConfigError: naming ``setting``; the key never appears in the error or its chain.
    """
    try:
        key = serialization.load_pem_private_key(private_key_pem.encode("utf-8"), password=None)
    except (ValueError, TypeError, UnicodeError, UnsupportedAlgorithm, AttributeError):
        # `from None`: the parser's own exception may describe the key bytes.
        raise ConfigError(setting, "is not an unencrypted PEM private key") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey) or not isinstance(key.curve, ec.SECP256R1):
        raise ConfigError(setting, "must be an EC P-256 key (the .p8 file from Apple)")
    return ECKey.import_key(key)


def apple_client_secret(
    team_id: str,
    client_id: str,
    key_id: str,
    private_key_pem: str,
    now: datetime,
    lifetime: timedelta = DEFAULT_LIFETIME,
) -> str:
    """The ES256 JWT to send as ``client_secret`` to Apple's token and revoke endpoints.

    ``now`` must be timezone-aware; the secret is valid from ``now`` for ``lifetime``
    (at most :data:`MAX_LIFETIME`).

    Raises:
        ConfigError: a credential is malformed, naming ``providers.apple.<setting>``.
        InvalidInput: ``client_id`` is empty, ``now`` is naive, or ``lifetime`` is out of range.
    """
    check_apple_id(team_id, "providers.apple.team_id")
    check_apple_id(key_id, "providers.apple.key_id")
    key = load_apple_key(private_key_pem)
    if not isinstance(client_id, str) or not client_id.strip():
        raise InvalidInput("client_id", "must be the non-empty Services ID")
    if now.tzinfo is None or now.utcoffset() is None:
        raise InvalidInput("now", "must be timezone-aware")
    if not timedelta(0) < lifetime <= MAX_LIFETIME:
        raise InvalidInput("lifetime", "must be positive and at most 15,777,000 seconds")
    issued_at = int(now.timestamp())
    claims = {
        "iss": team_id,
        "iat": issued_at,
        "exp": issued_at + int(lifetime.total_seconds()),
        "aud": APPLE_AUDIENCE,
        "sub": client_id,
    }
    # Exactly the two header fields Apple documents (no `typ`).
    return jwt.encode({"alg": "ES256", "kid": key_id}, claims, key, default_type=None)
