"""Values sealed as the releases before per-purpose subkeys sealed them (format version 1:
the ring's raw key), for tests of what an upgraded vault still opens."""

from __future__ import annotations

import os

from oauthvault.crypto.envelope import NONCE_SIZE, RAW_KEY_VERSION
from oauthvault.crypto.keyring import KeyRing


def seal_as_version_1(ring: KeyRing, plaintext: bytes, associated_data: bytes) -> bytes:
    """``plaintext`` sealed with the ring's newest raw key, as version 1 did."""
    key = ring.primary
    nonce = os.urandom(NONCE_SIZE)
    return (
        RAW_KEY_VERSION + key.key_id + nonce + key.aead.encrypt(nonce, plaintext, associated_data)
    )
