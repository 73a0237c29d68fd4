"""Processes of the cache-coherence tests (targets of ``multiprocessing`` "spawn").

:func:`store_in_turn` stores tokens one after the other, as another process of the
application would; :func:`churn` stores, refreshes, deletes and reads a few connections at
random, a fixed number of operations (the same work however busy the machine is), reporting
every read with its time, for the history check.
"""

from __future__ import annotations

import random
import time
from pathlib import Path
from typing import Any

from oauthvault import OAuthTokenCache, VaultError
from oauthvault.config import Settings
from oauthvault.providers.config import load_provider_configs


def store_in_turn(
    database_url: str,
    redis_url: str,
    key: str,
    ids: tuple[str, str, str],
    tokens: list[str],
    results: Any,
) -> None:
    settings = Settings.load(
        database_url=database_url, redis_url=redis_url, oauth_encryption_key=key
    )
    with OAuthTokenCache(settings=settings) as vault:
        for token in tokens:
            vault.store_tokens(*ids, token, "refresh", expires_in=3600)
        results.put(vault.cache_available)


def churn(
    database_url: str,
    redis_url: str,
    key: str,
    providers_file: str,
    name: str,
    connections: list[tuple[str, str, str]],
    operations: int,
    seed: int,
    go: Any,
    ready: Any,
    results: Any,
) -> None:
    settings = Settings.load(
        database_url=database_url, redis_url=redis_url, oauth_encryption_key=key
    )
    providers = load_provider_configs(Path(providers_file), {})
    rng = random.Random(seed)
    reads: list[tuple[int, int | None, float, float]] = []
    writes = errors = 0
    with OAuthTokenCache(settings=settings, providers=providers) as vault:
        ready.put(1)
        go.wait()
        for n in range(1, operations + 1):
            which = rng.randrange(len(connections))
            ids = connections[which]
            roll = rng.random()
            try:
                if roll < 0.25:
                    vault.store_tokens(*ids, f"{name}-{n}", f"r-{name}-{n}", expires_in=3600)
                    writes += 1
                elif roll < 0.30:
                    vault.delete_tokens(*ids)
                    writes += 1
                elif roll < 0.35:
                    vault.refresh_tokens(*ids)  # an invalid refresh token: a status write
                else:
                    started = time.time()
                    found = vault.get_tokens(*ids)
                    reads.append(
                        (which, None if found is None else found.version, started, time.time())
                    )
            except VaultError:
                errors += 1  # refreshes of fake tokens fail (needs_reauth, not found)
    results.put({"reads": reads, "writes": writes, "errors": errors})
