"""A process of the database-fault load test: stores and reads in a loop for a while.

:func:`hammer` is the target of ``multiprocessing`` "spawn" processes started by
tests/vault/test_database_faults.py; it reports which stores were acknowledged (returned
without an error), the moments calls succeeded, and the errors by type.
"""

from __future__ import annotations

import time
from typing import Any

from oauthvault import OAuthTokenCache
from oauthvault.config import Settings


def hammer(
    database_url: str,
    key: str,
    name: str,
    duration: float,
    go: Any,
    ready: Any,
    results: Any,
) -> None:
    settings = Settings.load(database_url=database_url, redis_url="", oauth_encryption_key=key)
    stored: list[str] = []
    successes: list[float] = []
    errors: dict[str, int] = {}
    with OAuthTokenCache(settings=settings) as vault:
        ready.put(1)
        go.wait()
        deadline = time.monotonic() + duration
        n = 0
        while time.monotonic() < deadline:
            n += 1
            workspace = f"{name}-{n}"
            try:
                vault.store_tokens("load", workspace, "u", f"token-{n}", expires_in=3600)
                stored.append(workspace)
                found = vault.get_tokens("load", workspace, "u")
                assert found is not None and found.access_token == f"token-{n}"
                successes.append(time.time())
            except Exception as error:  # counted by type: the test allows one type only
                errors[type(error).__name__] = errors.get(type(error).__name__, 0) + 1
                time.sleep(0.005)
    results.put({"stored": stored, "successes": successes, "errors": errors})
