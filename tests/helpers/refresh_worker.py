"""A process of the refresh race: several threads ask for the same expiring token at once.

:func:`race` is the target of ``multiprocessing`` "spawn" processes started by
tests/vault/test_refresh.py: a spawned child imports it by its module name,
``tests.helpers.refresh_worker``, from the ``sys.path`` the parent hands it (pytest puts the
project root there, as tests/ is a package).
"""

from __future__ import annotations

import json
import multiprocessing
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from oauthvault import OAuthTokenCache
from oauthvault.providers.config import load_provider_configs
from oauthvault.providers.credential_apps import credential_apps_from


def _fan_out(threads: int, go: Any, ready: Any, call: Callable[[], None]) -> None:
    """Run ``call`` in ``threads`` threads that all start when ``go`` is set (every
    process at the same moment); ``ready`` is told once they wait for it."""
    barrier = threading.Barrier(threads)

    def caller() -> None:
        barrier.wait()
        go.wait()
        call()

    workers = [threading.Thread(target=caller) for _ in range(threads)]
    for worker in workers:
        worker.start()
    ready.put(1)
    for worker in workers:
        worker.join()


def _read_tokens(
    vault: OAuthTokenCache,
    ids: tuple[str, str, str],
    threads: int,
    go: Any,
    ready: Any,
    results: Any,
) -> None:
    """Every thread reads the access token once; puts (tokens, errors) on ``results``."""
    tokens: list[str] = []
    errors: list[str] = []

    def read() -> None:
        try:
            tokens.append(vault.get_access_token(*ids, min_ttl=60))
        except Exception as error:  # reported to the test, which fails on any
            errors.append(f"{type(error).__name__}: {error}")

    _fan_out(threads, go, ready, read)
    results.put((tokens, errors))


def race(
    database_url: str,
    redis_url: str | None,
    key: str,
    providers_file: str,
    ids: tuple[str, str, str],
    threads: int,
    go: Any,
    ready: Any,
    results: Any,
) -> None:
    providers = load_provider_configs(Path(providers_file), {})
    with OAuthTokenCache(database_url, redis_url or "", key, providers=providers) as vault:
        _read_tokens(vault, ids, threads, go, ready, results)


def timed_race(
    database_url: str,
    key: str,
    providers_file: str,
    ids: tuple[str, str, str],
    threads: int,
    refresh_timeout: float,
    go: Any,
    ready: Any,
    results: Any,
) -> None:
    """:func:`race` without Redis, with the vault's ``refresh_timeout`` given, reporting
    for each caller its token (or error) and the seconds from the start to its answer."""
    providers = load_provider_configs(Path(providers_file), {})
    answers: list[tuple[str, float]] = []
    with OAuthTokenCache(
        database_url, "", key, providers=providers, refresh_timeout=refresh_timeout
    ) as vault:

        def read() -> None:
            started = time.monotonic()
            try:
                answer = vault.get_access_token(*ids, min_ttl=60)
            except Exception as error:  # reported to the test, which fails on any
                answer = f"{type(error).__name__}: {error}"
            answers.append((answer, time.monotonic() - started))

        _fan_out(threads, go, ready, read)
    results.put(answers)


def credential_race(
    database_url: str,
    redis_url: str | None,
    key: str,
    apps_file: str,
    ids: tuple[str, str, str],
    threads: int,
    go: Any,
    ready: Any,
    results: Any,
) -> None:
    """:func:`race` for a minted credential (a GitHub App installation token): the app's
    settings come from ``apps_file`` (JSON shaped like ``[credentials]``)."""
    apps = credential_apps_from(json.loads(Path(apps_file).read_text()))
    with OAuthTokenCache(database_url, redis_url or "", key, credential_apps=apps) as vault:
        _read_tokens(vault, ids, threads, go, ready, results)


def run_race(target: Callable[..., None], args: tuple[Any, ...], processes: int) -> list[Any]:
    """Start ``processes`` spawned processes running ``target(*args, go, ready, results)``,
    let them all go at once when every one is ready, and return what each put on
    ``results``."""
    context = multiprocessing.get_context("spawn")
    go, ready, results = context.Event(), context.Queue(), context.Queue()
    started = [
        context.Process(target=target, args=(*args, go, ready, results)) for _ in range(processes)
    ]
    for process in started:
        process.start()
    for _ in started:
        ready.get(timeout=60)
    go.set()
    outcomes = [results.get(timeout=120) for _ in started]
    for process in started:
        process.join(timeout=30)
    return outcomes
