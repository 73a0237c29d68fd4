"""OAuthStateManager: one-time, short-lived, bound states, on every storage combination."""

from __future__ import annotations

import asyncio
import threading

import pytest

from oauthvault import AsyncOAuthTokenCache, InvalidState, OAuthTokenCache
from oauthvault.connect import AsyncOAuthStateManager, OAuthStateManager

REDIRECT = "http://127.0.0.1:8000/oauth/google/callback"


@pytest.fixture(params=["sqlite", "sqlite+redis", "postgres", "postgres+redis"])
def vault(request, tmp_path, key, clock):
    database, _, cache = request.param.partition("+")
    if database == "sqlite":
        url = f"sqlite:///{tmp_path / 'vault.db'}"
    else:
        request.getfixturevalue("pg")
        url = request.getfixturevalue("postgres_url")
    redis_url = request.getfixturevalue("redis_url") if cache else None
    with OAuthTokenCache(url, redis_url, key, clock=clock) as vault:
        yield vault


@pytest.fixture
def states(vault):
    return OAuthStateManager(vault)


def create(states, **overrides):
    arguments = {
        "binding": "browser-secret",
        "return_url": "https://app.example.com/done",
        "code_verifier": "VERIFIER-SECRET-" + "v" * 40,
        "nonce": "NONCE-SECRET",
    }
    arguments.update(overrides)
    return states.create_state("google", "ws", "u", REDIRECT, **arguments)


def test_a_state_gives_back_its_request_once(states):
    state = create(states)
    assert len(state) >= 43  # 256 random bits
    record = states.consume_state(state, provider="google", binding="browser-secret")
    assert (record.provider, record.workspace_id, record.actor_id) == ("google", "ws", "u")
    assert record.redirect_uri == REDIRECT
    assert record.return_url == "https://app.example.com/done"
    assert record.code_verifier.startswith("VERIFIER-SECRET-")
    assert record.nonce == "NONCE-SECRET"
    assert "VERIFIER" not in repr(record)
    assert "NONCE" not in repr(record)


def test_reused_state_is_rejected(states):
    state = create(states)
    states.consume_state(state, provider="google", binding="browser-secret")
    with pytest.raises(InvalidState, match="already used"):
        states.consume_state(state, provider="google", binding="browser-secret")


def test_expired_state_is_rejected(states, clock):
    state = create(states)
    clock.advance(11 * 60)
    with pytest.raises(InvalidState):
        states.consume_state(state, provider="google", binding="browser-secret")


def test_state_for_another_provider_is_rejected_and_left_for_its_own(states):
    """Issue 26 (24): presenting it at the wrong provider does not spend it."""
    state = create(states)
    with pytest.raises(InvalidState):
        states.consume_state(state, provider="github", binding="browser-secret")
    assert states.consume_state(state, provider="google", binding="browser-secret")


@pytest.mark.parametrize("binding", [None, ""])
def test_state_without_a_binding_is_rejected_as_another_browsers(states, binding):
    state = create(states)
    with pytest.raises(InvalidState, match="another browser") as caught:
        states.consume_state(state, provider="google", binding=binding)
    assert caught.value.other_browser


@pytest.mark.parametrize("binding", [None, "", "another-browser"])
def test_state_from_another_browser_is_rejected_and_left_for_its_own(states, binding):
    """Issue 26 (24): a callback from another browser does not spend the real one's state."""
    state = create(states)
    with pytest.raises(InvalidState):
        states.consume_state(state, provider="google", binding=binding)
    assert states.consume_state(state, provider="google", binding="browser-secret")


@pytest.mark.parametrize("state", [None, "", "x" * 500, 42, "never-issued"])
def test_unknown_or_malformed_states_are_rejected(states, state):
    with pytest.raises(InvalidState):
        states.consume_state(state, provider="google", binding="browser-secret")


def test_concurrent_callbacks_consume_a_state_once(states):
    state = create(states)
    outcomes = []
    barrier = threading.Barrier(8)

    def callback():
        barrier.wait()
        try:
            states.consume_state(state, provider="google", binding="browser-secret")
            outcomes.append("ok")
        except InvalidState:
            outcomes.append("rejected")

    threads = [threading.Thread(target=callback) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["ok"] + ["rejected"] * 7


def test_nothing_secret_is_stored_in_clear(states, vault, request):
    state = create(states)
    dumps = []
    if vault.backend_mode == "db+cache":
        raw = request.getfixturevalue("raw_redis")
        dumps += [repr(raw.keys("*"))] + [repr(raw.get(k)) for k in raw.keys("*")]
    if vault.database.startswith("sqlite:///"):
        import sqlite3
        from contextlib import closing

        with closing(sqlite3.connect(vault.database.removeprefix("sqlite:///"))) as connection:
            dumps.append(repr(connection.execute("SELECT * FROM oauth_pending").fetchall()))
    else:
        pg = request.getfixturevalue("pg")
        dumps.append(repr(pg.execute("SELECT * FROM oauth_pending").fetchall()))
    text = "".join(dumps)
    assert state not in text
    assert "VERIFIER" not in text
    assert "NONCE-SECRET" not in text
    assert "app.example.com" not in text


def test_states_survive_a_redis_outage_through_the_database(tmp_path, key, clock, private_redis):
    with OAuthTokenCache(
        f"sqlite:///{tmp_path / 'v.db'}", private_redis.url, key, clock=clock
    ) as v:
        states = OAuthStateManager(v)
        private_redis.stop()
        state = create(states)
        record = states.consume_state(state, provider="google", binding="browser-secret")
        assert record.actor_id == "u"


def test_async_twin(postgres_url, pg, redis_url, key):
    async def scenario():
        async with AsyncOAuthTokenCache(postgres_url, redis_url, key) as vault:
            states = AsyncOAuthStateManager(vault)
            state = await states.create_state("google", "ws", "u", REDIRECT, binding="b")
            first = await states.consume_state(state, provider="google", binding="b")
            with pytest.raises(InvalidState):
                await states.consume_state(state, provider="google", binding="b")
            return first

    assert asyncio.run(scenario()).workspace_id == "ws"
