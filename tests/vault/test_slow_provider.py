"""Exactly once when the provider is slow: a refresh that may have reached the provider is
never followed by a second request with the same refresh token while it can still be
answered. Against the real local provider, which rotates refresh tokens and revokes the
whole grant when a rotated one is presented again, frozen with SIGSTOP past the vault's
read timeout (``refresh_timeout``) as a stalled provider would be.

Each stall test prints how many refresh requests reached the provider and when each
caller got its answer (``pytest -s`` shows them).
"""

from __future__ import annotations

import multiprocessing
import threading
import time

import pytest

from oauthvault import AsyncOAuthTokenCache, OAuthTokenCache, ReauthorizationRequired
from oauthvault.providers.config import load_provider_configs
from oauthvault.vault.refresh import UNANSWERED

from tests.helpers.refresh_worker import timed_race
from tests.vault.test_refresh import IDS, store_expiring, vault_for

READ_TIMEOUT = 1.0  # the vault's refresh_timeout: connect, write, and any other read
STALL = 3.0  # how long the provider stays frozen: three read timeouts


@pytest.fixture
def postgres_backend(pg, postgres_url):
    return postgres_url, None


@pytest.fixture
def providers_file(op, tmp_path):
    """The local provider with its endpoints given (no discovery, which a frozen provider
    would stall before any refresh) and its refresh tokens' behaviour not: rotating."""
    path = tmp_path / "providers.toml"
    path.write_text(_custom_table(op, None))
    return path


@pytest.fixture
def window(monkeypatch):
    """The answer window, 8 s unless a test sets another (the environment is read by every
    vault made after, and by the processes a test spawns)."""

    def set_window(seconds: float) -> None:
        monkeypatch.setenv("OAUTHVAULT_REFRESH_ANSWER_WINDOW", str(seconds))

    set_window(8)
    return set_window


def frozen_for(op, seconds: float) -> threading.Thread:
    """Freeze the provider now and thaw it ``seconds`` later (a thread; join it)."""
    op.freeze()

    def thaw() -> None:
        time.sleep(seconds)
        op.thaw()

    thread = threading.Thread(target=thaw)
    thread.start()
    return thread


def test_one_caller_waits_for_a_stalled_provider_and_keeps_its_answer(
    op, grant, providers_file, postgres_backend, key, window
):
    backend = postgres_backend
    store_expiring(backend, key, grant, left=0)  # expired: the caller must have a new one
    with vault_for(backend, key, providers_file, refresh_timeout=READ_TIMEOUT) as vault:
        thaw = frozen_for(op, STALL)
        try:
            started = time.monotonic()
            token = vault.get_access_token(*IDS)
            took = time.monotonic() - started
        finally:
            thaw.join()
        stats = op.stats()
        count = stats.get("refresh_token")
        print(f"\none caller: {count} refresh request(s), answer after {took:.1f} s")
        assert token != grant[0]
        assert STALL - 0.5 < took < 8
        assert stats.get("refresh_token") == 1 and stats.get("refresh_token_ok") == 1
        [listed] = vault.list_connections(workspace_id=IDS[1])
        assert listed.status == "active" and listed.last_error is None
        # The rotated refresh token was kept: the grant is alive and refreshes again.
        assert vault.refresh_tokens(*IDS).access_token != token
    assert op.stats().get("refresh_token_failed", 0) == 0


def test_five_callers_in_two_processes_send_one_refresh_to_a_stalled_provider(
    op, grant, providers_file, postgres_backend, key, window
):
    url, _ = postgres_backend
    store_expiring(postgres_backend, key, grant, left=0)
    context = multiprocessing.get_context("spawn")
    go, ready, results = context.Event(), context.Queue(), context.Queue()
    processes = [
        context.Process(
            target=timed_race,
            args=(url, key, str(providers_file), IDS, threads, READ_TIMEOUT, go, ready, results),
        )
        for threads in (3, 2)
    ]
    for process in processes:
        process.start()
    for _ in processes:
        ready.get(timeout=60)
    thaw = frozen_for(op, STALL)
    try:
        go.set()
        answers = [answer for _ in processes for answer in results.get(timeout=60)]
    finally:
        thaw.join()
    for process in processes:
        process.join(timeout=30)
    stats = op.stats()
    timings = ", ".join(f"{took:.1f}" for _, took in sorted(answers, key=lambda a: a[1]))
    count = stats.get("refresh_token")
    print(f"\nfive callers: {count} refresh request(s); answers after {timings} s")
    tokens = {token for token, _ in answers}
    assert len(answers) == 5 and len(tokens) == 1, answers
    [token] = tokens
    assert token != grant[0] and not token.startswith(("ProviderError", "ReauthorizationRequired"))
    assert all(took < 8 for _, took in answers)
    assert stats.get("refresh_token") == 1 and stats.get("refresh_token_failed", 0) == 0
    with vault_for(postgres_backend, key, providers_file) as vault:
        assert vault.refresh_tokens(*IDS).access_token not in (token, grant[0])


def test_a_stall_past_the_answer_window_is_recorded_and_never_resent_by_the_waiters(
    op, grant, providers_file, postgres_backend, key, window
):
    """The window passes with no answer: the leaseholder records the unknown outcome, the
    waiters answer with the current token (still valid) without sending, and once the
    provider has answered the queued request the next refresh sends the stored token
    once. Here the provider did rotate on that request (its answer had nowhere to go), so
    the grant is gone, and ``last_error`` says why instead of looking like a revocation."""
    window(2)
    backend = postgres_backend
    store_expiring(backend, key, grant, left=30)  # valid, but below min_ttl=60: refresh
    with vault_for(backend, key, providers_file, refresh_timeout=READ_TIMEOUT) as vault:
        answers: list[tuple[str, float]] = []

        def caller() -> None:
            started = time.monotonic()
            answers.append((vault.get_access_token(*IDS, min_ttl=60), time.monotonic() - started))

        thaw = frozen_for(op, 2 + STALL)
        try:
            callers = [threading.Thread(target=caller) for _ in range(4)]
            for thread in callers:
                thread.start()
            for thread in callers:
                thread.join()
            [listed] = vault.list_connections(workspace_id=IDS[1])
        finally:
            thaw.join()
        timings = ", ".join(f"{took:.1f}" for _, took in sorted(answers, key=lambda a: a[1]))
        assert {token for token, _ in answers} == {grant[0]}  # the current token, served
        assert listed.status == "degraded"
        assert listed.last_error is not None and listed.last_error.startswith(UNANSWERED)
        # The provider now reads the queued request (and rotates on it); nothing else came.
        deadline = time.monotonic() + 10
        while (
            op.stats().get("refresh_token_ok", 0) + op.stats().get("refresh_token_failed", 0) < 1
            and time.monotonic() < deadline
        ):
            time.sleep(0.1)
        stats = op.stats()
        print(
            f"\npast the window: {stats.get('refresh_token')} refresh request(s) while frozen; "
            f"callers answered after {timings} s"
        )
        assert stats.get("refresh_token") == 1
        rotated = stats.get("refresh_token_ok") == 1
        print(f"the provider {'rotated on' if rotated else 'dropped'} the unanswered request")
        if rotated:  # rotated on a request whose answer was lost
            with pytest.raises(ReauthorizationRequired):
                vault.refresh_tokens(*IDS)
            [listed] = vault.list_connections(workspace_id=IDS[1])
            assert listed.status == "needs_reauth"
            assert "a rotation was probably lost to that slow answer" in (listed.last_error or "")
        else:  # the provider dropped it: the stored token still works
            assert vault.refresh_tokens(*IDS).access_token != grant[0]
        assert op.stats().get("refresh_token") == 2  # one more, once


def test_the_async_vault_waits_for_a_slow_answer_too(
    op, grant, providers_file, postgres_backend, key, window
):
    url, _ = postgres_backend
    store_expiring(postgres_backend, key, grant, left=0)
    providers = load_provider_configs(providers_file, {})

    async def read() -> str:
        async with AsyncOAuthTokenCache(
            url, "", key, providers=providers, refresh_timeout=0.5
        ) as vault:
            return await vault.get_access_token(*IDS)

    op.fail(delay_ms=2000)  # answered, normally, after four read timeouts
    import asyncio

    assert asyncio.run(read()) != grant[0]
    stats = op.stats()
    assert stats.get("refresh_token") == 1 and stats.get("refresh_token_ok") == 1


def _custom_table(op, refresh_tokens: str | None) -> str:
    """The local provider as a custom table with explicit endpoints (no discovery)."""
    line = "" if refresh_tokens is None else f'refresh_tokens = "{refresh_tokens}"\n'
    return (
        "[providers.local]\n"
        f'authorization_endpoint = "{op.issuer}/auth"\n'
        f'token_endpoint = "{op.issuer}/token"\n'
        'client_id = "test-client"\nclient_secret = "test-secret"\n' + line
    )


@pytest.mark.parametrize(("declared", "requests"), [(None, 1), ("rotating", 1), ("static", 2)])
def test_a_custom_provider_is_treated_as_rotating_unless_it_says_static(
    op, grant, postgres_backend, key, tmp_path, monkeypatch, declared, requests
):
    monkeypatch.setenv("OAUTHVAULT_REFRESH_ANSWER_WINDOW", "0.6")
    providers_file = tmp_path / "providers.toml"
    providers_file.write_text(_custom_table(op, declared))
    providers = load_provider_configs(providers_file, {})
    assert providers["local"].spec.refresh_tokens == (declared or "rotating")
    url, _ = postgres_backend
    store_expiring(postgres_backend, key, grant, left=30)
    op.fail(delay_ms=1500)  # past the window: no answer in time
    with OAuthTokenCache(url, "", key, providers=providers, refresh_timeout=0.5) as vault:
        vault.get_access_token(*IDS, min_ttl=60)
    time.sleep(1.2)  # the delayed request is answered by now
    assert op.stats().get("refresh_token") == requests  # a retry only where documented
