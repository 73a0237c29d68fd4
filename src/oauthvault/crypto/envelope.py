"""AES-256-GCM sealing with the key id carried in the ciphertext.

Layout of a sealed value (bytes)::

    version (1) | key id (4) | nonce (12) | ciphertext + GCM tag (16)

The associated data is not stored: the caller passes it again to open the value,
so a ciphertext moved to another row or field fails to authenticate.
"""

from __future__ import annotations

import os

from cryptography.exceptions import InvalidTag

from oauthvault.crypto.keyring import KEY_ID_SIZE, KeyRing
from oauthvault.errors import DecryptionError

__all__ = ["open_sealed", "seal", "sealed_key_id"]

VERSION = b"\x01"
NONCE_SIZE = 12
_HEADER = len(VERSION) + KEY_ID_SIZE
_MINIMUM = _HEADER + NONCE_SIZE + 16


def seal(keyring: KeyRing, plaintext: bytes, associated_data: bytes) -> bytes:
    """Encrypt ``plaintext`` with the ring's newest key, bound to ``associated_data``."""
    key = keyring.primary
    nonce = os.urandom(NONCE_SIZE)
    return VERSION + key.key_id + nonce + key.aead.encrypt(nonce, plaintext, associated_data)


def sealed_key_id(sealed: bytes) -> bytes:
    """The id of the key that sealed this value (not verified until it is opened)."""
    return sealed[len(VERSION) : _HEADER]


def open_sealed(keyring: KeyRing, sealed: bytes, associated_data: bytes) -> bytes:
    """Decrypt a value made by :func:`seal`.

    Raises:
        DecryptionError: unknown version or key, wrong associated data, or tampering.
    """
    if len(sealed) < _MINIMUM or sealed[:1] != VERSION:
        raise DecryptionError
    key = keyring.find(sealed[1:_HEADER])
    if key is None:
        raise DecryptionError
    nonce = sealed[_HEADER : _HEADER + NONCE_SIZE]
    try:
        return key.aead.decrypt(nonce, sealed[_HEADER + NONCE_SIZE :], associated_data)
    except InvalidTag:
        raise DecryptionError from None
