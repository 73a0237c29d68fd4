"""Sealing bytes with a key ring: the fixed format, authenticated data, tampering."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from oauthvault import DecryptionError, KeyRing, generate_key
from oauthvault.crypto import open_sealed, seal, sealed_key_id

# A fixed vector: if the sealed format ever changes, stored tokens would stop decrypting.
VECTOR_KEY = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
VECTOR_AD = b"oauthvault test vector"
VECTOR_SEALED = bytes.fromhex(
    "01a488469d000102030405060708090a0b3e63e422eb93a778f92ee53da503f63bad33cad73f40cd42d5e777"
)
VECTOR_PLAINTEXT = b"ya29.vector"


def test_fixed_vector_decrypts():
    ring = KeyRing.from_text(VECTOR_KEY)
    assert ring.key_ids == ["a488469d"]
    assert open_sealed(ring, VECTOR_SEALED, VECTOR_AD) == VECTOR_PLAINTEXT


def test_keys_are_newest_first_and_any_key_decrypts():
    old, new = generate_key(), generate_key()
    sealed_by_old = seal(KeyRing.from_text(old), b"secret", b"ad")
    ring = KeyRing.from_text(f"{new}, {old}")
    assert sealed_key_id(seal(ring, b"x", b"ad")) == ring.primary.key_id
    assert open_sealed(ring, sealed_by_old, b"ad") == b"secret"


def test_unknown_key_fails():
    sealed = seal(KeyRing.generate(), b"secret", b"ad")
    with pytest.raises(DecryptionError):
        open_sealed(KeyRing.generate(), sealed, b"ad")


def test_other_associated_data_fails():
    ring = KeyRing.generate()
    with pytest.raises(DecryptionError):
        open_sealed(ring, seal(ring, b"secret", b"row A"), b"row B")


def test_every_flipped_byte_is_detected():
    ring = KeyRing.generate()
    sealed = seal(ring, b"secret token", b"ad")
    for index in range(len(sealed)):
        tampered = bytearray(sealed)
        tampered[index] ^= 0x01
        with pytest.raises(DecryptionError):
            open_sealed(ring, bytes(tampered), b"ad")


@pytest.mark.parametrize("length", [0, 1, 16, 32])
def test_truncated_values_fail(length):
    ring = KeyRing.generate()
    with pytest.raises(DecryptionError):
        open_sealed(ring, seal(ring, b"secret", b"ad")[:length], b"ad")


_RING = KeyRing.generate()


@given(st.binary(max_size=4096), st.binary(max_size=256))
def test_round_trip(plaintext, associated_data):
    assert open_sealed(_RING, seal(_RING, plaintext, associated_data), associated_data) == (
        plaintext
    )


def test_nonces_differ():
    assert seal(_RING, b"same", b"ad") != seal(_RING, b"same", b"ad")
