"""AES-256-GCM sealing with the key id carried in the ciphertext.

Layout of a sealed value (bytes)::

    version (1) | key id (4) | nonce (12) | ciphertext + GCM tag (16)

Version 2 (every value sealed now) is encrypted with the key's subkey for the value's
purpose (:data:`~oauthvault.crypto.keyring.Purpose`); version 1, written before subkeys,
with the raw key, and still opens (for any purpose: its associated data already names
the purpose). Re-sealing (the next store or refresh of a row, ``rotate-key``) moves a value
to version 2.

The associated data is not stored: the caller passes it again to open the value,
so a ciphertext moved to another row or field fails to authenticate.
"""

from __future__ import annotations

import os

from cryptography.exceptions import InvalidTag

from oauthvault.crypto.keyring import KEY_ID_SIZE, KeyRing, Purpose
from oauthvault.errors import DecryptionError

__all__ = ["open_sealed", "seal", "sealed_key_id"]

VERSION = b"\x02"
RAW_KEY_VERSION = b"\x01"
NONCE_SIZE = 12
_HEADER = len(VERSION) + KEY_ID_SIZE
_MINIMUM = _HEADER + NONCE_SIZE + 16


def seal(keyring: KeyRing, plaintext: bytes, associated_data: bytes, purpose: Purpose) -> bytes:
    """Encrypt ``plaintext`` with the ring's newest key's subkey for ``purpose``, bound to
    ``associated_data``, and count the encryption against that key."""
    key = keyring.primary
    keyring.usage.add(key.key_id)
    nonce = os.urandom(NONCE_SIZE)
    aead = key.subkeys[purpose]
    return VERSION + key.key_id + nonce + aead.encrypt(nonce, plaintext, associated_data)


def sealed_key_id(sealed: bytes) -> bytes:
    """The id of the key that sealed this value (not verified until it is opened)."""
    return sealed[len(VERSION) : _HEADER]


def open_sealed(keyring: KeyRing, sealed: bytes, associated_data: bytes, purpose: Purpose) -> bytes:
    """Decrypt a value made by :func:`seal` for ``purpose`` (or by a version before
    subkeys).

    Raises:
        DecryptionError: unknown version or key, another purpose, wrong associated data, or
            tampering.
    """
    if len(sealed) < _MINIMUM:
        raise DecryptionError
    key = keyring.find(sealed[1:_HEADER])
    if key is None:
        raise DecryptionError
    version = sealed[:1]
    if version == VERSION:
        aead = key.subkeys[purpose]
    elif version == RAW_KEY_VERSION:
        aead = key.aead
    else:
        raise DecryptionError
    nonce = sealed[_HEADER : _HEADER + NONCE_SIZE]
    try:
        return aead.decrypt(nonce, sealed[_HEADER + NONCE_SIZE :], associated_data)
    except InvalidTag:
        raise DecryptionError from None
