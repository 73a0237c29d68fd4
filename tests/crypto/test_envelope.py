"""Sealing bytes with a key ring: the fixed format, authenticated data, tampering,
per-purpose subkeys and the encryption count."""

import base64
import hashlib
import hmac

import pytest
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from hypothesis import given
from hypothesis import strategies as st

from oauthvault import DecryptionError, KeyRing, generate_key
from oauthvault.crypto import open_sealed, seal, sealed_key_id
from oauthvault.crypto.keyring import PURPOSES, derive_subkey

P = "token-row"

# Fixed vectors: if the sealed format ever changes, stored tokens would stop decrypting.
VECTOR_KEY = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
VECTOR_AD = b"oauthvault test vector"
# Version 1, sealed with the raw key (every value written before subkeys).
VECTOR_SEALED = bytes.fromhex(
    "01a488469d000102030405060708090a0b3e63e422eb93a778f92ee53da503f63bad33cad73f40cd42d5e777"
)
# Version 2, sealed with the key's token-row subkey.
VECTOR_SEALED_V2 = bytes.fromhex(
    "02a488469d000102030405060708090a0be09412079b01c69b95a0f1be1859b6c8b0c46112a080b3fa722714"
)
VECTOR_PLAINTEXT = b"ya29.vector"


def _hkdf_sha256(secret, info):
    # RFC 5869 by hand (no salt: 32 zero bytes; one block of output).
    prk = hmac.new(bytes(32), secret, hashlib.sha256).digest()
    return hmac.new(prk, info + b"\x01", hashlib.sha256).digest()


def test_fixed_vector_decrypts():
    ring = KeyRing.from_text(VECTOR_KEY)
    assert ring.key_ids == ["a488469d"]
    assert open_sealed(ring, VECTOR_SEALED, VECTOR_AD, P) == VECTOR_PLAINTEXT


def test_values_sealed_with_the_raw_key_still_open_for_every_purpose():
    ring = KeyRing.from_text(VECTOR_KEY)
    for purpose in PURPOSES:
        assert open_sealed(ring, VECTOR_SEALED, VECTOR_AD, purpose) == VECTOR_PLAINTEXT


def test_fixed_subkey_vector_decrypts():
    ring = KeyRing.from_text(VECTOR_KEY)
    assert open_sealed(ring, VECTOR_SEALED_V2, VECTOR_AD, P) == VECTOR_PLAINTEXT


def test_new_values_are_version_2_sealed_with_the_hkdf_subkey_not_the_raw_key():
    secret = base64.urlsafe_b64decode(VECTOR_KEY)
    ring = KeyRing.from_text(VECTOR_KEY)
    sealed = seal(ring, b"token", b"ad", "cache-record")
    assert sealed[:1] == b"\x02"
    nonce, body = sealed[5:17], sealed[17:]
    subkey = _hkdf_sha256(secret, b"oauthvault/v1/cache-record")
    assert AESGCM(subkey).decrypt(nonce, body, b"ad") == b"token"
    with pytest.raises(InvalidTag):
        AESGCM(secret).decrypt(nonce, body, b"ad")


def test_subkeys_differ_per_purpose_and_from_the_raw_key():
    secret = base64.urlsafe_b64decode(VECTOR_KEY)
    subkeys = {derive_subkey(secret, purpose) for purpose in PURPOSES}
    assert len(subkeys) == len(PURPOSES)
    assert secret not in subkeys


@pytest.mark.parametrize("sealed_for", PURPOSES)
def test_a_value_of_one_purpose_does_not_open_as_another(sealed_for):
    ring = KeyRing.generate()
    sealed = seal(ring, b"secret", b"same ad", sealed_for)
    for purpose in PURPOSES:
        if purpose == sealed_for:
            assert open_sealed(ring, sealed, b"same ad", purpose) == b"secret"
        else:
            with pytest.raises(DecryptionError):
                open_sealed(ring, sealed, b"same ad", purpose)


def test_a_new_value_relabelled_version_1_does_not_open():
    ring = KeyRing.generate()
    sealed = seal(ring, b"secret", b"ad", P)
    with pytest.raises(DecryptionError):
        open_sealed(ring, b"\x01" + sealed[1:], b"ad", P)


def test_each_seal_is_counted_against_the_newest_key():
    old, new = generate_key(), generate_key()
    ring = KeyRing.from_text(f"{new},{old}")
    for purpose in PURPOSES:
        seal(ring, b"x", b"ad", purpose)
    open_sealed(ring, seal(ring, b"x", b"ad", P), b"ad", P)  # opening counts nothing
    assert ring.usage.totals() == {ring.key_ids[0]: len(PURPOSES) + 1}


def test_keys_are_newest_first_and_any_key_decrypts():
    old, new = generate_key(), generate_key()
    sealed_by_old = seal(KeyRing.from_text(old), b"secret", b"ad", P)
    ring = KeyRing.from_text(f"{new}, {old}")
    assert sealed_key_id(seal(ring, b"x", b"ad", P)) == ring.primary.key_id
    assert open_sealed(ring, sealed_by_old, b"ad", P) == b"secret"


def test_unknown_key_fails():
    sealed = seal(KeyRing.generate(), b"secret", b"ad", P)
    with pytest.raises(DecryptionError):
        open_sealed(KeyRing.generate(), sealed, b"ad", P)


def test_other_associated_data_fails():
    ring = KeyRing.generate()
    with pytest.raises(DecryptionError):
        open_sealed(ring, seal(ring, b"secret", b"row A", P), b"row B", P)


def test_every_flipped_byte_is_detected():
    ring = KeyRing.generate()
    sealed = seal(ring, b"secret token", b"ad", P)
    for index in range(len(sealed)):
        tampered = bytearray(sealed)
        tampered[index] ^= 0x01
        with pytest.raises(DecryptionError):
            open_sealed(ring, bytes(tampered), b"ad", P)


@pytest.mark.parametrize("length", [0, 1, 16, 32])
def test_truncated_values_fail(length):
    ring = KeyRing.generate()
    with pytest.raises(DecryptionError):
        open_sealed(ring, seal(ring, b"secret", b"ad", P)[:length], b"ad", P)


_RING = KeyRing.generate()


@given(st.binary(max_size=4096), st.binary(max_size=256))
def test_round_trip(plaintext, associated_data):
    assert open_sealed(_RING, seal(_RING, plaintext, associated_data, P), associated_data, P) == (
        plaintext
    )


def test_nonces_differ():
    assert seal(_RING, b"same", b"ad", P) != seal(_RING, b"same", b"ad", P)
