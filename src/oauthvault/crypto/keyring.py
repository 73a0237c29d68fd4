"""The key ring behind ``OAUTH_ENCRYPTION_KEY``: one or more 32-byte keys, newest first.

The newest key encrypts; any key in the ring decrypts. Each key has a short id,
derived from the key itself, that every ciphertext carries so decryption knows
which key to try. A ``Fernet.generate_key()`` value is a valid key.

A key never encrypts anything itself: each :data:`Purpose` gets its own AES-256-GCM
subkey, derived with HKDF-SHA256 (``info`` = ``oauthvault/v1/<purpose>``), so the
ciphertexts of one purpose never open as another's, and each subkey's random nonces are
spent by its purpose alone. The raw key is kept only to open values sealed before
subkeys existed (:mod:`oauthvault.crypto.envelope`'s version 1). The key id stays the
ring entry's. The ring counts its encryptions per key (:class:`EncryptionCounter`).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal, get_args

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from oauthvault.crypto.usage import EncryptionCounter
from oauthvault.errors import ConfigError

__all__ = ["KEY_ID_SIZE", "PURPOSES", "EncryptionKey", "KeyRing", "Purpose", "generate_key"]

#: What a subkey encrypts: the token columns of a row (access, refresh, token answer), the
#: records cached in Redis, the in-process cache's records, one-time pending records
#: (OAuth states, connect links, resume handles) and admin console sessions.
Purpose = Literal["token-row", "cache-record", "local-record", "pending-record", "admin-session"]
PURPOSES: tuple[Purpose, ...] = get_args(Purpose)

KEY_SIZE = 32
KEY_ID_SIZE = 4
_SETTING = "OAUTH_ENCRYPTION_KEY"


def generate_key() -> str:
    """Return a new random key as url-safe base64 text, the form the key ring reads."""
    return base64.urlsafe_b64encode(os.urandom(KEY_SIZE)).decode("ascii")


def _key_id(secret: bytes) -> bytes:
    # A one-way digest with a domain tag: the id reveals nothing usable about the key.
    return hashlib.sha256(b"oauthvault key id\x00" + secret).digest()[:KEY_ID_SIZE]


def derive_subkey(secret: bytes, purpose: Purpose) -> bytes:
    """The 32-byte subkey of ``secret`` for ``purpose`` (HKDF-SHA256, no salt: the key is
    uniformly random already; the purpose label is the ``info``)."""
    hkdf = HKDF(
        algorithm=hashes.SHA256(),
        length=KEY_SIZE,
        salt=None,
        info=b"oauthvault/v1/" + purpose.encode(),
    )
    return hkdf.derive(secret)


@dataclass(frozen=True, slots=True)
class EncryptionKey:
    """One ring entry: its id, one AES-256-GCM subkey per purpose, and the raw key (which
    only opens values sealed before subkeys). Only the id shows in ``repr``."""

    key_id: bytes
    #: The raw key: opens version-1 values only, never encrypts.
    aead: AESGCM = field(repr=False, compare=False)
    #: One subkey per :data:`Purpose`, derived once when the key is read.
    subkeys: Mapping[Purpose, AESGCM] = field(repr=False, compare=False)

    @property
    def key_id_hex(self) -> str:
        return self.key_id.hex()

    @classmethod
    def from_secret(cls, secret: bytes) -> EncryptionKey:
        if len(secret) != KEY_SIZE:
            raise ValueError("an encryption key is 32 bytes")
        subkeys = {purpose: AESGCM(derive_subkey(secret, purpose)) for purpose in PURPOSES}
        return cls(_key_id(secret), AESGCM(secret), MappingProxyType(subkeys))


class KeyRing:
    """Keys newest first: :attr:`primary` encrypts, :meth:`find` looks any key up by id."""

    __slots__ = ("_by_id", "_keys", "usage")

    def __init__(self, keys: list[EncryptionKey]) -> None:
        if not keys:
            raise ConfigError(_SETTING, "the key ring needs at least one key")
        by_id: dict[bytes, EncryptionKey] = {}
        for key in keys:
            if key.key_id in by_id:
                raise ConfigError(_SETTING, "the same key is listed twice")
            by_id[key.key_id] = key
        self._keys = tuple(keys)
        self._by_id = by_id
        #: Encryptions by key since this ring was made (see :mod:`oauthvault.crypto.usage`).
        self.usage = EncryptionCounter()

    @classmethod
    def from_text(cls, text: str, setting: str = _SETTING) -> KeyRing:
        """Parse comma-separated url-safe base64 keys, newest first.

        Raises:
            ConfigError: naming ``setting`` and the position of a bad entry, never its value.
        """
        entries = [entry.strip() for entry in text.split(",")]
        keys: list[EncryptionKey] = []
        for position, entry in enumerate(entries, start=1):
            if not entry:
                raise ConfigError(setting, f"entry {position} is empty")
            try:
                secret = base64.urlsafe_b64decode(entry + "=" * (-len(entry) % 4))
            except (binascii.Error, ValueError):
                raise ConfigError(setting, f"entry {position} is not url-safe base64") from None
            # The decoder stops at padding and skips stray characters: only the exact
            # encoding of the decoded bytes is the key (a typo must not pass as another).
            canonical = base64.urlsafe_b64encode(secret).decode("ascii").rstrip("=")
            if entry.rstrip("=") != canonical:
                raise ConfigError(setting, f"entry {position} is not url-safe base64") from None
            if len(secret) != KEY_SIZE:
                raise ConfigError(
                    setting, f"entry {position} decodes to {len(secret)} bytes, not {KEY_SIZE}"
                )
            keys.append(EncryptionKey.from_secret(secret))
        return cls(keys)

    @classmethod
    def generate(cls) -> KeyRing:
        """A ring of one fresh random key (for ephemeral use and tests)."""
        return cls([EncryptionKey.from_secret(os.urandom(KEY_SIZE))])

    @property
    def primary(self) -> EncryptionKey:
        """The newest key: every new ciphertext is sealed with it."""
        return self._keys[0]

    @property
    def key_ids(self) -> list[str]:
        """Hex ids of the keys, newest first."""
        return [key.key_id_hex for key in self._keys]

    def find(self, key_id: bytes) -> EncryptionKey | None:
        """The key with this id, or ``None`` if the ring does not hold it."""
        return self._by_id.get(key_id)

    def has_key(self, key_id_hex: str) -> bool:
        """Whether the ring holds the key with this hex id (as rows record it)."""
        return key_id_hex in self.key_ids

    def __len__(self) -> int:
        return len(self._keys)

    def __repr__(self) -> str:
        return f"KeyRing(key_ids={self.key_ids!r})"
