"""Key ring and AES-256-GCM sealing of token fields."""

from oauthvault.crypto.envelope import open_sealed, seal, sealed_key_id
from oauthvault.crypto.keyring import EncryptionKey, KeyRing, generate_key

__all__ = ["EncryptionKey", "KeyRing", "generate_key", "open_sealed", "seal", "sealed_key_id"]
