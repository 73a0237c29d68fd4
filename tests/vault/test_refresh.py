"""Refresh against the real local provider: single flight across processes, rotation,
re-authorization, transient failures."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from oauthvault import (
    AsyncOAuthTokenCache,
    OAuthTokenCache,
    ProviderError,
    ReauthorizationRequired,
    generate_key,
)
from oauthvault.providers.config import load_provider_configs
from oauthvault.vault.refresh import UNANSWERED, RetryPolicy

from tests.helpers.clock import Clock
from tests.helpers.oidc_client import authorize, discover, redeem
from tests.helpers.oidc_server import OIDCServer, local_provider_toml
from tests.helpers.refresh_worker import race, run_race

IDS = ("local", "ws_refresh", "user")


@pytest.fixture(params=["postgres+redis", "postgres", "sqlite"])
def backend(request, tmp_path):
    database, _, cache = request.param.partition("+")
    if database == "sqlite":
        url = f"sqlite:///{tmp_path / 'vault.db'}"
    else:
        request.getfixturevalue("pg")
        url = request.getfixturevalue("postgres_url")
    redis_url = request.getfixturevalue("redis_url") if cache else None
    return url, redis_url


def vault_for(backend, key, providers_file, **options):
    url, redis_url = backend
    providers = load_provider_configs(providers_file, {})
    return OAuthTokenCache(url, redis_url or "", key, providers=providers, **options)


def store_expiring(backend, key, grant, left=5, refresh_token=None):
    """Store the grant as a one-hour token with ``left`` seconds left (stored by a vault
    whose clock runs an hour minus ``left`` behind): a min_ttl above ``left`` refreshes it.
    A token stored just now would count as fresh for most of its life, however short."""
    url, redis_url = backend
    lifetime = 3600

    def behind():
        return datetime.now(UTC) - timedelta(seconds=lifetime - left)

    with OAuthTokenCache(url, redis_url or "", key, clock=behind) as vault:
        refresh = refresh_token or grant[1]
        vault.store_tokens(*IDS, grant[0], refresh, expires_in=lifetime, scope="openid")


@pytest.mark.slow  # five processes, twice
@pytest.mark.parametrize("redis", ["up", "down"])
def test_fifty_callers_in_five_processes_cause_one_refresh_grant(
    op, grant, providers_file, postgres_url, pg, redis_url, redis, key
):
    cache = redis_url if redis == "up" else "redis://127.0.0.1:1/0"
    store_expiring((postgres_url, cache), key, grant)
    args = (postgres_url, cache, key, str(providers_file), IDS, 10)
    outcomes = run_race(race, args, processes=5)
    tokens = [token for got, _ in outcomes for token in got]
    errors = [error for _, problems in outcomes for error in problems]
    assert errors == []
    assert len(tokens) == 50
    assert len(set(tokens)) == 1 and tokens[0] != grant[0]  # everyone got the one new token
    stats = op.stats()
    assert stats.get("refresh_token", 0) == 1
    assert stats.get("refresh_token_failed", 0) == 0
    # The rotated refresh token was stored: the grant is alive and refreshes again.
    with vault_for((postgres_url, None), key, providers_file) as vault:
        assert vault.refresh_tokens(*IDS).access_token not in (tokens[0], grant[0])
    assert op.stats()["refresh_token_ok"] == 2


def test_a_fresh_token_is_served_without_a_grant(op, grant, providers_file, backend, key):
    with vault_for(backend, key, providers_file) as vault:
        store_expiring(backend, key, grant, left=3600)
        assert vault.get_access_token(*IDS) == grant[0]
    assert op.stats().get("refresh_token", 0) == 0


def test_rotation_stores_the_new_refresh_token(op, grant, providers_file, backend, key):
    events = []
    with vault_for(backend, key, providers_file, on_event=events.append) as vault:
        store_expiring(backend, key, grant)
        first = vault.refresh_tokens(*IDS)
        assert first.refresh_token != grant[1]  # the provider rotated it, we kept the new one
        second = vault.refresh_tokens(*IDS)  # would fail if the old one had been kept
        assert second.access_token != first.access_token
        [listed] = vault.list_connections(workspace_id="ws_refresh")
        assert listed.status == "active" and listed.last_refreshed_at is not None
    assert [event.kind for event in events] == ["refreshed", "refreshed"]


def test_invalid_grant_marks_the_connection_and_emits_an_event(
    op, grant, providers_file, backend, key
):
    events = []
    with vault_for(backend, key, providers_file, on_event=events.append) as vault:
        store_expiring(backend, key, grant, refresh_token="not-a-valid-refresh-token")
        with pytest.raises(ReauthorizationRequired) as caught:
            vault.get_access_token(*IDS)
        assert caught.value.error == "invalid_grant"
        [listed] = vault.list_connections(workspace_id="ws_refresh")
        assert listed.status == "needs_reauth"
        assert listed.last_error.startswith("invalid_grant")
        # Later callers get the same answer without bothering the provider again.
        with pytest.raises(ReauthorizationRequired):
            vault.get_access_token(*IDS)
    assert op.stats()["refresh_token"] == 1
    assert [(e.kind, e.status, e.previous_status) for e in events] == [
        ("status_changed", "needs_reauth", "active")
    ]
    assert "not-a-valid" not in repr(events)


def test_transient_503s_are_retried_and_lose_nothing(op, grant, providers_file, backend, key):
    policy = RetryPolicy(attempts=3, base_delay=0.01)
    with vault_for(backend, key, providers_file, retry_policy=policy) as vault:
        store_expiring(backend, key, grant)
        op.fail(status=503, count=2)
        token = vault.get_access_token(*IDS)
        assert token != grant[0]
    stats = op.stats()
    assert stats["refresh_token_failed"] == 2 and stats["refresh_token_ok"] == 1


def test_a_provider_outage_degrades_and_keeps_serving_the_valid_token(
    op, grant, providers_file, backend, key
):
    policy = RetryPolicy(attempts=3, base_delay=0.01)
    events = []
    with vault_for(
        backend, key, providers_file, retry_policy=policy, on_event=events.append
    ) as vault:
        store_expiring(backend, key, grant, left=30)  # still valid, but under min_ttl
        op.fail(status=503, count=3)
        assert vault.get_access_token(*IDS) == grant[0]  # served while valid
        [listed] = vault.list_connections(workspace_id="ws_refresh")
        assert listed.status == "degraded"
        assert vault.get_tokens(*IDS)["refresh_token"] == grant[1]  # nothing overwritten
        # The provider is back: the next refresh works and the connection recovers.
        assert vault.get_access_token(*IDS) != grant[0]
        [listed] = vault.list_connections(workspace_id="ws_refresh")
        assert listed.status == "active"
    assert [(e.kind, e.status) for e in events] == [
        ("status_changed", "degraded"),
        ("status_changed", "active"),
        ("refreshed", "active"),
    ]


def test_an_expired_token_and_a_provider_outage_is_an_error(
    op, grant, providers_file, backend, key
):
    policy = RetryPolicy(attempts=2, base_delay=0.01)
    with vault_for(backend, key, providers_file, retry_policy=policy) as vault:
        store_expiring(backend, key, grant, left=0)
        op.fail(status=503, count=2)
        with pytest.raises(ProviderError) as caught:
            vault.get_access_token(*IDS)
        assert not isinstance(caught.value, ReauthorizationRequired)
        assert vault.get_tokens(*IDS)["refresh_token"] == grant[1]


def test_a_slow_answer_is_waited_for_not_retried(op, grant, providers_file, tmp_path, key):
    """A read timeout does not end a refresh that may rotate the refresh token: its answer
    is waited for (the answer window), so the provider sees one request."""
    backend = (f"sqlite:///{tmp_path / 'vault.db'}", None)
    policy = RetryPolicy(attempts=3, base_delay=0.01)
    with vault_for(backend, key, providers_file, retry_policy=policy, refresh_timeout=0.5) as v:
        store_expiring(backend, key, grant, left=30)
        v.refresh_tokens(*IDS)  # discovery, and a first refresh
        op.reset()
        op.fail(delay_ms=1500)
        renewed = v.refresh_tokens(*IDS).access_token
        [listed] = v.list_connections()
        assert listed.status == "active" and renewed != grant[0]
    assert op.stats()["refresh_token"] == 1  # one request, no retry


def test_no_answer_in_the_window_is_recorded_not_retried(
    op, grant, providers_file, tmp_path, key, monkeypatch
):
    monkeypatch.setenv("OAUTHVAULT_REFRESH_ANSWER_WINDOW", "0.5")
    backend = (f"sqlite:///{tmp_path / 'vault.db'}", None)
    policy = RetryPolicy(attempts=3, base_delay=0.01)
    with vault_for(backend, key, providers_file, retry_policy=policy, refresh_timeout=0.5) as v:
        store_expiring(backend, key, grant, left=30)
        op.fail(delay_ms=1500)
        assert v.get_access_token(*IDS) == grant[0]  # degraded, current token served
        [listed] = v.list_connections()
        assert listed.status == "degraded"
        assert listed.last_error is not None and listed.last_error.startswith(UNANSWERED)
    assert op.stats()["refresh_token"] == 1  # one request, no retry


def test_async_callers_share_one_refresh(op, grant, providers_file, postgres_url, pg, redis_url):
    key = generate_key()
    store_expiring((postgres_url, redis_url), key, grant)

    async def scenario():
        providers = load_provider_configs(Path(providers_file), {})
        async with AsyncOAuthTokenCache(postgres_url, redis_url, key, providers=providers) as v:
            return await asyncio.gather(*(v.get_access_token(*IDS) for _ in range(20)))

    tokens = asyncio.run(scenario())
    assert len(set(tokens)) == 1 and tokens[0] != grant[0]
    assert op.stats()["refresh_token"] == 1


def test_delete_with_revoke_reaches_the_provider(op, grant, providers_file, backend, key):
    import httpx

    from oauthvault import DeleteOutcome

    with vault_for(backend, key, providers_file) as vault:
        store_expiring(backend, key, grant, left=3600)
        outcome = vault.delete_tokens(*IDS, revoke=True)
        assert outcome == DeleteOutcome(deleted=True, revoked=True)
        assert vault.get_tokens(*IDS) is None
        assert vault.delete_tokens(*IDS, revoke=True) == DeleteOutcome(False, None)
    assert op.stats()["revocation_ok"] == 1
    userinfo = httpx.get(f"{op.issuer}/me", headers={"Authorization": f"Bearer {grant[0]}"})
    assert userinfo.status_code == 401  # the grant is gone at the provider


def test_revoke_for_an_unconfigured_provider_deletes_nothing(providers_file, tmp_path, key):
    from oauthvault import UnknownProvider

    with vault_for((f"sqlite:///{tmp_path / 'v.db'}", None), key, providers_file) as vault:
        vault.store_tokens("elsewhere", "ws", "u", "token")
        with pytest.raises(UnknownProvider):
            vault.delete_tokens("elsewhere", "ws", "u", revoke=True)
        assert vault.get_tokens("elsewhere", "ws", "u") is not None


def test_async_delete_with_revoke(op, grant, providers_file, tmp_path):
    key = generate_key()

    async def scenario():
        providers = load_provider_configs(Path(providers_file), {})
        url = f"sqlite:///{tmp_path / 'v.db'}"
        async with AsyncOAuthTokenCache(url, "", key, providers=providers) as vault:
            await vault.store_tokens(*IDS, grant[0], grant[1], expires_in=3600)
            return await vault.delete_tokens(*IDS, revoke=True)

    outcome = asyncio.run(scenario())
    assert (outcome.deleted, outcome.revoked) == (True, True)


# --- the background refresher ----------------------------------------------------------------


def test_the_worker_refreshes_what_expires_soon_and_nothing_else(
    op, grant, providers_file, backend, key
):
    from oauthvault.refresher import BackgroundRefresher

    with vault_for(backend, key, providers_file) as vault:
        store_expiring(backend, key, grant, left=60)
        vault.store_tokens("local", "ws_refresh", "fresh-user", "fresh", "r", expires_in=3600)
        done = BackgroundRefresher(vault, lead_time=300).run_once()
        assert [key.actor_id for key in done.refreshed] == ["user"]
        assert done.failed == []
        assert vault.get_tokens(*IDS)["access_token"] != grant[0]
        assert vault.get_tokens("local", "ws_refresh", "fresh-user")["access_token"] == "fresh"
    assert op.stats()["refresh_token"] == 1


def test_two_workers_at_once_make_one_grant(op, grant, providers_file, postgres_url, pg, key):
    import contextlib
    import threading

    from oauthvault.refresher import BackgroundRefresher

    passes = []
    with contextlib.ExitStack() as stack:
        vaults = [
            stack.enter_context(vault_for((postgres_url, None), key, providers_file))
            for _ in range(2)
        ]
        store_expiring((postgres_url, None), key, grant, left=60)
        barrier = threading.Barrier(2)

        def work(vault):
            barrier.wait()
            passes.append(BackgroundRefresher(vault, lead_time=300).run_once())

        threads = [threading.Thread(target=work, args=(vault,)) for vault in vaults]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert sorted(len(done.refreshed) for done in passes) == [1, 1]
    assert op.stats()["refresh_token"] == 1


def test_idle_refresh_tokens_are_kept_alive(op, grant, providers_file, tmp_path, key):
    import dataclasses
    from datetime import UTC, datetime

    import httpx

    from oauthvault.providers.discovery import discover as discover_spec
    from oauthvault.refresher import BackgroundRefresher

    [config] = load_provider_configs(providers_file, {}).values()
    with httpx.Client() as client:
        spec = discover_spec(config.issuer, client, name="local")
    # As if the catalog said: unused refresh tokens die after 10 days.
    idle_policy = config.resolved(dataclasses.replace(spec, refresh_token_idle_expiry_days=10))
    clock = Clock(datetime.now(UTC))
    url = f"sqlite:///{tmp_path / 'v.db'}"
    with OAuthTokenCache(url, "", key, providers={"local": idle_policy}, clock=clock) as v:
        v.store_tokens(*IDS, grant[0], grant[1], expires_in=30 * 86400)
        assert BackgroundRefresher(v).run_once().refreshed == []  # not idle yet
        clock.advance(6 * 86400)  # more than half the idle window
        assert [k.actor_id for k in BackgroundRefresher(v).run_once().refreshed] == ["user"]
        assert BackgroundRefresher(v).run_once().refreshed == []  # just refreshed
    assert op.stats()["refresh_token"] == 1


def test_the_worker_command_stops_cleanly_on_sigterm(tmp_path, key):
    import signal
    import subprocess
    import sys

    process = subprocess.Popen(
        [sys.executable, "-m", "oauthvault", "worker", "--interval", "0.2"],
        env={
            "PATH": "/usr/bin:/bin",
            "DATABASE_URL": f"sqlite:///{tmp_path / 'w.db'}",
            "OAUTH_ENCRYPTION_KEY": key,
        },
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    # Signal only once the loop runs (its handlers are installed before it logs this).
    seen = []
    while not any("refresher started" in line for line in seen):
        line = process.stderr.readline().decode()
        assert line, "the worker exited before it started: " + "".join(seen)
        seen.append(line)
    assert process.poll() is None  # still running its passes
    process.send_signal(signal.SIGTERM)
    _, rest = process.communicate(timeout=10)
    stderr = "".join(seen) + rest.decode()
    assert process.returncode == 0, stderr
    assert "refresher stopped" in stderr


# --- no refresh storm ---------------------------------------------------------------------


@pytest.mark.slow  # real five-second tokens
def test_five_second_tokens_with_min_ttl_60_make_at_most_two_grants_in_twenty_calls(tmp_path, key):
    """The provider's tokens live 5 s, the caller asks for 60 s: a token is served until
    its last quarter instead of being refreshed on every call."""
    import time

    import httpx

    with OIDCServer(auto_approve=True, ttl={"AccessToken": 5}) as short:
        tokens = redeem(discover(short.issuer), authorize(discover(short.issuer)))
        short.reset()
        providers = tmp_path / "providers.toml"
        providers.write_text(local_provider_toml(short.issuer))
        configs = load_provider_configs(providers, {})
        url = f"sqlite:///{tmp_path / 'v.db'}"
        served = []
        with OAuthTokenCache(url, "", key, providers=configs) as vault:
            vault.store_tokens(*IDS, tokens["access_token"], tokens["refresh_token"], 5)
            for _ in range(20):
                token = vault.get_access_token(*IDS, min_ttl=60)
                served.append(token)
                # Each one served works at the provider right now.
                me = httpx.get(f"{short.issuer}/me", headers={"Authorization": f"Bearer {token}"})
                assert me.status_code == 200
                time.sleep(0.3)
        grants = short.stats().get("refresh_token", 0)
    assert 1 <= grants <= 2, grants  # 20 calls over 6 s of 5-second tokens
    assert len(set(served)) == grants + 1
