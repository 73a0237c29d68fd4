"""Sign in with Apple client secrets are ES256 JWTs that verify with the team's public key."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from joserfc import jwt
from joserfc.jwk import ECKey

from oauthvault import ConfigError, InvalidInput
from oauthvault.providers import apple_client_secret
from oauthvault.providers.apple import APPLE_AUDIENCE, MAX_LIFETIME

TEAM_ID = "ABCDE12345"
KEY_ID = "KEY1234567"
CLIENT_ID = "com.example.web"
NOW = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)


def pem(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


@pytest.fixture(scope="module")
def private_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def b64decode(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def verify(
    secret: str, public_key: ec.EllipticCurvePublicKey
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Check the ES256 signature with `cryptography` alone; return (header, claims)."""
    header_b64, claims_b64, signature_b64 = secret.split(".")
    signature = b64decode(signature_b64)
    assert len(signature) == 64  # JWS ES256: raw r || s, 32 bytes each
    r, s = int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
    public_key.verify(
        encode_dss_signature(r, s),
        f"{header_b64}.{claims_b64}".encode(),
        ec.ECDSA(hashes.SHA256()),
    )
    return json.loads(b64decode(header_b64)), json.loads(b64decode(claims_b64))


def test_secret_is_signed_by_the_team_key_with_apples_claims(private_key):
    secret = apple_client_secret(TEAM_ID, CLIENT_ID, KEY_ID, pem(private_key), NOW)
    header, claims = verify(secret, private_key.public_key())
    assert header == {"alg": "ES256", "kid": KEY_ID}
    issued_at = int(NOW.timestamp())
    assert claims == {
        "iss": TEAM_ID,
        "iat": issued_at,
        "exp": issued_at + 3600,
        "aud": APPLE_AUDIENCE,
        "sub": CLIENT_ID,
    }
    # A JOSE library agrees.
    token = jwt.decode(secret, ECKey.import_key(private_key.public_key()))
    assert token.claims["aud"] == "https://appleid.apple.com"


def test_another_key_does_not_verify(private_key):
    secret = apple_client_secret(TEAM_ID, CLIENT_ID, KEY_ID, pem(private_key), NOW)
    other = ec.generate_private_key(ec.SECP256R1()).public_key()
    with pytest.raises(InvalidSignature):
        verify(secret, other)


def test_lifetime_sets_exp_up_to_six_months(private_key):
    secret = apple_client_secret(TEAM_ID, CLIENT_ID, KEY_ID, pem(private_key), NOW, MAX_LIFETIME)
    _, claims = verify(secret, private_key.public_key())
    assert claims["exp"] - claims["iat"] == 15_777_000


@pytest.mark.parametrize(
    "lifetime", [timedelta(0), timedelta(seconds=-1), MAX_LIFETIME + timedelta(seconds=1)]
)
def test_lifetime_out_of_range_is_rejected(private_key, lifetime):
    with pytest.raises(InvalidInput) as caught:
        apple_client_secret(TEAM_ID, CLIENT_ID, KEY_ID, pem(private_key), NOW, lifetime)
    assert caught.value.argument == "lifetime"


def test_naive_time_is_rejected(private_key):
    with pytest.raises(InvalidInput) as caught:
        apple_client_secret(TEAM_ID, CLIENT_ID, KEY_ID, pem(private_key), datetime(2030, 1, 1))
    assert caught.value.argument == "now"


def test_time_is_a_parameter(private_key):
    later = NOW + timedelta(days=1)
    first = apple_client_secret(TEAM_ID, CLIENT_ID, KEY_ID, pem(private_key), NOW)
    second = apple_client_secret(TEAM_ID, CLIENT_ID, KEY_ID, pem(private_key), later)
    _, claims = verify(second, private_key.public_key())
    assert claims["iat"] == int(later.timestamp())
    assert verify(first, private_key.public_key())[1]["iat"] == int(NOW.timestamp())


def wrong_keys() -> list[str]:
    p384 = pem(ec.generate_private_key(ec.SECP384R1()))
    rsa_key = pem(rsa.generate_private_key(public_exponent=65537, key_size=2048))
    encrypted = (
        ec.generate_private_key(ec.SECP256R1())
        .private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"pw"),
        )
        .decode()
    )
    return [p384, rsa_key, encrypted, "-----BEGIN PRIVATE KEY-----\nMIGHAgEAsecretbits\n", "x"]


@pytest.mark.parametrize("bad_pem", wrong_keys())
def test_a_bad_key_names_the_setting_never_the_key(bad_pem):
    with pytest.raises(ConfigError) as caught:
        apple_client_secret(TEAM_ID, CLIENT_ID, KEY_ID, bad_pem, NOW)
    assert caught.value.setting == "providers.apple.private_key"
    error = caught.value
    shown = str(error) + repr(error) + repr(error.__cause__) + repr(error.__context__)
    for line in bad_pem.splitlines():
        if len(line) > 8 and "PRIVATE KEY" not in line:
            assert line not in shown
    assert error.__cause__ is None
    assert error.__context__ is None or error.__suppress_context__


@pytest.mark.parametrize(
    ("team_id", "key_id", "setting"),
    [
        ("abcde12345", KEY_ID, "providers.apple.team_id"),
        ("ABCDE1234", KEY_ID, "providers.apple.team_id"),
        (TEAM_ID, "KEY-123456", "providers.apple.key_id"),
    ],
)
def test_malformed_ids_name_their_setting(private_key, team_id, key_id, setting):
    with pytest.raises(ConfigError) as caught:
        apple_client_secret(team_id, CLIENT_ID, key_id, pem(private_key), NOW)
    assert caught.value.setting == setting


def test_empty_client_id_is_rejected(private_key):
    with pytest.raises(InvalidInput) as caught:
        apple_client_secret(TEAM_ID, " ", KEY_ID, pem(private_key), NOW)
    assert caught.value.argument == "client_id"
