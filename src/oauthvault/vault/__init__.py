"""The vault: encrypted tokens per connection, the database first, Redis in front.

``base`` holds what both flavours share (configuration, key ring, providers); ``tiers`` the
read tiers (local cache, Redis values, counters); ``results`` the values calls return;
``events`` where connection events go;
``steps`` the I/O steps a flow may ask for; ``flows``, ``refresh`` and ``pending`` the
I/O-free flows (write-through, reads, deletes, exactly-once refresh, one-time records), with
the refresh's pure rules (retries, timing, the lease wait) in ``refresh_policy``;
``async_vault`` the vault itself (the hand-written source) and ``sync_vault`` its blocking
twin, generated from it by ``scripts/async_to_sync.py``; ``pending_records`` likewise.
"""

from oauthvault.vault.async_vault import AsyncOAuthTokenCache
from oauthvault.vault.pending import SavedRecord
from oauthvault.vault.pending_records import PendingRecords
from oauthvault.vault.pending_records_async import AsyncPendingRecords
from oauthvault.vault.refresh import RetryPolicy
from oauthvault.vault.results import BackendMode, CacheInfo, DeleteOutcome, RotationReport
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
