"""Propagation: how soon a store in one process is seen by another process's next read.

Process B (:func:`watch`, spawned) reads one connection in a loop through its own vault
(local cache and change feed on) and reports each new access token with the moment it
first saw it; process A stores a new token, notes when ``store_tokens`` returned, and
waits for B's report before the next one.
"""

from __future__ import annotations

import multiprocessing
import statistics
import time
from typing import Any

from oauthvault import OAuthTokenCache

IDS = ("google", "ws_propagation", "reader")


def watch(database_url: str, redis_url: str, key: str, ready: Any, seen: Any, stop: Any) -> None:
    with OAuthTokenCache(database_url, redis_url, key) as vault:
        while not vault.cache_info().local_live:
            time.sleep(0.01)
        ready.put(1)
        last = None
        while not stop.is_set():
            found = vault.get_tokens(*IDS)
            token = None if found is None else found.access_token
            if token != last:
                seen.put((token, time.time()))
                last = token


def propagation(database_url: str, redis_url: str, key: str, changes: int) -> dict[str, float]:
    context = multiprocessing.get_context("spawn")
    ready, seen, stop = context.Queue(), context.Queue(), context.Event()
    with OAuthTokenCache(database_url, redis_url, key, local_cache=False) as writer:
        writer.store_tokens(*IDS, "start", "r", expires_in=3600)
        reader = context.Process(
            target=watch, args=(database_url, redis_url, key, ready, seen, stop)
        )
        reader.start()
        try:
            ready.get(timeout=60)
            while seen.get(timeout=10)[0] != "start":
                pass
            delays = []
            for n in range(changes):
                token = f"change-{n}"
                writer.store_tokens(*IDS, token, "r", expires_in=3600)
                stored = time.time()
                while True:
                    got, at = seen.get(timeout=10)
                    if got == token:
                        break
                delays.append(max(0.0, at - stored))
        finally:
            stop.set()
            reader.join(timeout=30)
    delays.sort()
    return {
        "changes": changes,
        "p50_ms": round(statistics.median(delays) * 1000, 3),
        "p99_ms": round(delays[int(len(delays) * 0.99) - 1] * 1000, 3),
        "max_ms": round(delays[-1] * 1000, 3),
    }
