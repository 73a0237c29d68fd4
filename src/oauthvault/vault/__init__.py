"""The vault: encrypted tokens per connection, the database first, Redis in front.

``base`` holds what both flavours share (configuration, key ring, providers, events);
``steps`` the I/O steps a flow may ask for; ``flows``, ``refresh`` and ``pending`` the
I/O-free flows (write-through, reads, deletes, exactly-once refresh, one-time records);
``sync_vault`` and ``async_vault`` the two drivers that perform the steps.
"""

from oauthvault.vault.async_vault import AsyncOAuthTokenCache
from oauthvault.vault.base import BackendMode, CacheInfo, DeleteOutcome, RotationReport
from oauthvault.vault.pending import AsyncPendingRecords, PendingRecords, SavedRecord
from oauthvault.vault.refresh import RetryPolicy
from oauthvault.vault.sync_vault import OAuthTokenCache

__all__ = [
    "AsyncOAuthTokenCache",
    "AsyncPendingRecords",
    "BackendMode",
    "CacheInfo",
    "DeleteOutcome",
    "OAuthTokenCache",
    "PendingRecords",
    "RetryPolicy",
    "RotationReport",
    "SavedRecord",
]
