"""Both flavours have every capability: the blocking vault is generated from the asyncio one
(scripts/async_to_sync.py), and their public APIs match method for method."""

from __future__ import annotations

import inspect
import subprocess
import sys
from pathlib import Path

from oauthvault import AsyncOAuthTokenCache, OAuthTokenCache
from oauthvault.cache import AsyncRedisTokenCache, RedisTokenCache
from oauthvault.connect import AsyncOAuthStateManager, OAuthStateManager
from oauthvault.storage.postgres import PostgresTokenStore
from oauthvault.storage.postgres_async import AsyncPostgresTokenStore
from oauthvault.vault import AsyncPendingRecords, PendingRecords
from oauthvault.vault.api_client import ApiClient
from oauthvault.vault.api_client_async import AsyncApiClient

ROOT = Path(__file__).resolve().parents[2]

#: The names that differ by flavour, as Python's own conventions want them.
RENAMED = {"aclose": "close", "__aenter__": "__enter__", "__aexit__": "__exit__"}

PAIRS = [
    (AsyncOAuthTokenCache, OAuthTokenCache),
    (AsyncPendingRecords, PendingRecords),
    (AsyncOAuthStateManager, OAuthStateManager),
    (AsyncRedisTokenCache, RedisTokenCache),
    (AsyncPostgresTokenStore, PostgresTokenStore),
    (AsyncApiClient, ApiClient),
]


def public_api(cls: type) -> dict[str, object]:
    """Public methods and properties by name (dunders of the context protocols too), each
    with its parameters (name, kind, default) or ``property``."""
    found: dict[str, object] = {}
    for name, member in inspect.getmembers(cls):
        if name.startswith("_") and name not in (*RENAMED, "__enter__", "__exit__"):
            continue
        if isinstance(inspect.getattr_static(cls, name), property):
            found[RENAMED.get(name, name)] = "property"
        elif callable(member):
            signature = inspect.signature(member)
            found[RENAMED.get(name, name)] = [
                (p.name, p.kind, p.default) for p in signature.parameters.values()
            ]
    return found


def test_both_flavours_have_the_same_public_methods_and_parameters():
    for async_class, sync_class in PAIRS:
        assert public_api(async_class) == public_api(sync_class), sync_class.__name__


def test_the_capabilities_that_once_were_sync_only_exist_in_both():
    for name in ("rotate_key", "get_stored_tokens", "open"):
        assert inspect.iscoroutinefunction(getattr(AsyncOAuthTokenCache, name)), name
        assert callable(getattr(OAuthTokenCache, name)), name
    assert inspect.iscoroutinefunction(AsyncPostgresTokenStore.reseal_batch)


def test_the_checked_in_sync_twins_are_what_their_async_sources_generate():
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "async_to_sync.py"), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
