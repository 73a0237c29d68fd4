"""The storage contract, written once and run through inheritance on every backend
combination (sqlite/postgres x db-only/redis) and on both vault flavours: the sync
``OAuthTokenCache`` directly, the async ``AsyncOAuthTokenCache`` through
:class:`~tests.helpers.sync_facade.SyncFacade`."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from datetime import timedelta

import pytest
import redis

from oauthvault import (
    AsyncOAuthTokenCache,
    DecryptionError,
    InvalidInput,
    OAuthTokenCache,
    TokenSet,
    generate_key,
)

from tests.helpers.clock import NOW
from tests.helpers.sync_facade import SyncFacade


class VaultContract:
    """Every backend combination and flavour must pass these. Subclasses provide
    ``database_url`` and ``cache_url`` fixtures, ``raw_sql`` to reach under the vault, and
    ``open_vault``/``open_twin`` (the vault under test and the other flavour, both with the
    sync vault's interface). Both flavours have every method (tests/vault/test_flavours.py).
    """

    def open_vault(self, database_url, cache_url, key, **options):
        raise NotImplementedError

    def open_twin(self, database_url, cache_url, key, **options):
        raise NotImplementedError

    @pytest.fixture
    def vault(self, database_url, cache_url, key, clock):
        with self.open_vault(database_url, cache_url, key, clock=clock) as vault:
            yield vault

    def test_store_then_get_returns_what_was_stored(self, vault):
        vault.store_tokens("google", "ws_abc123", "user_456", "ya29.a", "1//r", 3600, "mail")
        tokens = vault.get_tokens("google", "ws_abc123", "user_456")
        assert tokens == TokenSet("ya29.a", "1//r", NOW + timedelta(seconds=3600), "mail")
        assert tokens["expires_at"].tzinfo is not None

    def test_get_of_an_unknown_connection_is_none(self, vault):
        assert vault.get_tokens("google", "ws", "nobody") is None

    def test_store_replaces_the_previous_tokens(self, vault):
        vault.store_tokens("google", "ws", "u", "first", "r1", 60, "a")
        vault.store_tokens("google", "ws", "u", "second", None, None, None)
        assert vault.get_tokens("google", "ws", "u") == TokenSet("second", None, None, None)

    def test_delete_reports_whether_something_was_deleted(self, vault):
        vault.store_tokens("google", "ws", "u", "tok", expires_in=60)
        assert vault.delete_tokens("google", "ws", "u") is True
        assert vault.get_tokens("google", "ws", "u") is None
        assert vault.delete_tokens("google", "ws", "u") is False

    def test_workspaces_actors_and_providers_are_isolated(self, vault):
        vault.store_tokens("google", "ws_a", "u", "a-token", expires_in=60)
        vault.store_tokens("google", "ws_b", "u", "b-token", expires_in=60)
        vault.store_tokens("microsoft", "ws_a", "u", "m-token", expires_in=60)
        vault.store_tokens("google", "ws_a", "v", "v-token", expires_in=60)
        assert vault.get_tokens("google", "ws_a", "u")["access_token"] == "a-token"
        assert vault.get_tokens("google", "ws_b", "u")["access_token"] == "b-token"
        assert vault.get_tokens("microsoft", "ws_a", "u")["access_token"] == "m-token"
        assert vault.get_tokens("google", "ws_a", "v")["access_token"] == "v-token"
        vault.delete_tokens("google", "ws_a", "u")
        assert vault.get_tokens("google", "ws_b", "u")["access_token"] == "b-token"

    def test_ids_that_differ_only_in_case_or_colons_are_different_connections(self, vault):
        vault.store_tokens("google", "a:b", "c", "one", expires_in=60)
        vault.store_tokens("google", "a", "b:c", "two", expires_in=60)
        vault.store_tokens("google", "WS", "c", "three", expires_in=60)
        vault.store_tokens("google", "ws", "c", "four", expires_in=60)
        assert vault.get_tokens("google", "a:b", "c")["access_token"] == "one"
        assert vault.get_tokens("google", "a", "b:c")["access_token"] == "two"
        assert vault.get_tokens("google", "WS", "c")["access_token"] == "three"
        assert vault.get_tokens("google", "ws", "c")["access_token"] == "four"

    def test_unicode_ids_round_trip_exactly(self, vault):
        vault.store_tokens("google", "caf\u00e9", "\u00fc", "composed", expires_in=60)
        vault.store_tokens("google", "cafe\u0301", "\u00fc", "decomposed", expires_in=60)
        assert vault.get_tokens("google", "caf\u00e9", "\u00fc")["access_token"] == "composed"
        assert vault.get_tokens("google", "cafe\u0301", "\u00fc")["access_token"] == "decomposed"

    @pytest.mark.parametrize(
        "arguments",
        [
            ("", "ws", "u", "tok"),
            ("google", "ws", "u" * 256, "tok"),
            ("google", "ws", "u", ""),
            ("google", "ws", "u", "tok", None, -5),
            ("google", "ws", "u", "t" * 20_000),
            ("google", "ws\x00", "u", "tok"),
        ],
    )
    def test_invalid_input_raises_and_writes_nothing(self, vault, arguments):
        with pytest.raises(InvalidInput):
            vault.store_tokens(*arguments)
        assert vault.list_connections() == []

    def test_expired_tokens_are_still_returned_for_refreshing(self, vault, clock):
        vault.store_tokens("google", "ws", "u", "old", "refresh", expires_in=60)
        clock.advance(2 * 3600)
        tokens = vault.get_tokens("google", "ws", "u")
        assert tokens["refresh_token"] == "refresh"
        assert tokens.seconds_left(clock.now) < 0

    def test_list_shows_connections_but_no_secrets(self, vault):
        vault.store_tokens("google", "ws", "u1", "secret-access-1", "secret-refresh", 60, "mail")
        vault.store_tokens("google", "ws", "u2", "secret-access-2", expires_in=60)
        vault.store_tokens("slack", "other", "u1", "secret-access-3")
        listed = vault.list_connections(workspace_id="ws")
        assert [(c.provider, c.actor_id, c.has_refresh_token) for c in listed] == [
            ("google", "u1", True),
            ("google", "u2", False),
        ]
        assert "secret" not in repr(listed)
        assert len(vault.list_connections(provider="slack")) == 1

    def test_a_row_copied_from_another_tenant_fails_to_decrypt(self, vault, raw_sql):
        vault.store_tokens("google", "ws_victim", "u", "victim-token", expires_in=60)
        vault.store_tokens("google", "ws_attacker", "u", "attacker-token", expires_in=60)
        raw_sql(
            "UPDATE oauth_tokens SET access_token_encrypted = (SELECT access_token_encrypted"
            " FROM oauth_tokens WHERE workspace_id = 'ws_victim')"
            " WHERE workspace_id = 'ws_attacker'"
        )
        self.forget_cache(vault)
        with pytest.raises(DecryptionError):
            vault.get_tokens("google", "ws_attacker", "u")
        assert vault.get_tokens("google", "ws_victim", "u")["access_token"] == "victim-token"

    def test_a_tampered_row_raises_a_typed_error(self, vault, raw_sql):
        vault.store_tokens("google", "ws", "u", "token", expires_in=60)
        raw_sql(
            "UPDATE oauth_tokens SET access_token_encrypted = substr(access_token_encrypted, 1, 29)"
            " || CASE WHEN substr(access_token_encrypted, 30, 1) = 'B' THEN 'C' ELSE 'B' END"
            " || substr(access_token_encrypted, 31)"
        )
        self.forget_cache(vault)
        with pytest.raises(DecryptionError) as caught:
            vault.get_tokens("google", "ws", "u")
        assert "token" not in str(caught.value).replace("ciphertext", "")

    def test_an_undecryptable_row_is_marked_with_its_own_status_and_an_event(
        self, database_url, cache_url, key, clock, raw_sql
    ):
        events = []
        with self.open_vault(
            database_url, cache_url, key, clock=clock, on_event=events.append
        ) as vault:
            vault.store_tokens("google", "ws", "u", "token", "refresh", expires_in=60)
            raw_sql("UPDATE oauth_tokens SET access_token_encrypted = refresh_token_encrypted")
            self.forget_cache(vault)
            for read in (vault.get_tokens, vault.get_tokens, vault.get_access_token):
                with pytest.raises(DecryptionError):
                    read("google", "ws", "u")
            [listed] = vault.list_connections(workspace_id="ws")
            assert listed.status == "undecryptable"
            assert "do not decrypt" in (listed.last_error or "")
            marked = [e for e in events if e.status == "undecryptable"]
            assert len(marked) == 1  # once, however often it is read
            assert (marked[0].kind, marked[0].previous_status) == ("status_changed", "active")
            vault.store_tokens("google", "ws", "u", "again", expires_in=60)
            assert vault.get_tokens("google", "ws", "u")["access_token"] == "again"
            assert vault.list_connections(workspace_id="ws")[0].status == "active"
        # A process whose ring lacks the row's key (a rotation rolling out) cannot read it,
        # but does not mark it: another process may hold the key.
        with self.open_vault(database_url, cache_url, generate_key(), clock=clock) as other:
            self.forget_cache(other)
            with pytest.raises(DecryptionError):
                other.get_tokens("google", "ws", "u")
            assert other.list_connections(workspace_id="ws")[0].status == "active"

    def test_rows_record_the_key_that_sealed_them(self, vault, raw_sql):
        vault.store_tokens("google", "ws", "u", "token", expires_in=60)
        assert raw_sql("SELECT key_id FROM oauth_tokens") == [(vault.keyring.primary.key_id_hex,)]
        stored = raw_sql("SELECT access_token_encrypted FROM oauth_tokens")[0][0]
        assert "token" not in stored

    def test_connection_params_and_the_token_answer_are_kept(self, vault, raw_sql):
        answer = {"access_token": "at-1", "id_token": "secret-id-token", "team": {"id": "T1"}}
        vault.store_tokens(
            "slack",
            "ws",
            "u",
            "at-1",
            "rt-1",
            600,
            params={"team_id": "T1"},
            token_response=answer,
        )
        for _ in range(2):  # from the database, then from the cache when there is one
            tokens = vault.get_tokens("slack", "ws", "u")
            assert tokens.params == {"team_id": "T1"}
            assert dict(tokens) == {
                "access_token": "at-1",
                "refresh_token": "rt-1",
                "expires_at": tokens.expires_at,
                "scope": None,
            }
        assert vault.get_token_response("slack", "ws", "u") == answer
        assert vault.list_connections("slack", "ws")[0].params == {"team_id": "T1"}
        stored = raw_sql("SELECT token_response_encrypted, connection_params FROM oauth_tokens")
        assert "secret-id-token" not in stored[0][0]
        assert stored[0][1] == '{"team_id":"T1"}'
        shown = repr(vault.get_tokens("slack", "ws", "u"))
        assert "at-1" not in shown and "rt-1" not in shown and "team_id" in shown

    def test_bad_params_and_answers_are_refused(self, vault):
        for params in ({"bad name": "x"}, {"ok": ""}, {"ok": "a\nb"}, {"ok": 3}, "x"):
            with pytest.raises(InvalidInput):
                vault.store_tokens("slack", "ws", "u", "at", params=params)
        with pytest.raises(InvalidInput):
            vault.store_tokens("slack", "ws", "u", "at", token_response={"x": object()})
        assert vault.get_tokens("slack", "ws", "u") is None

    def test_tokens_survive_a_restart_with_the_same_key(self, database_url, cache_url, key):
        with self.open_vault(database_url, cache_url, key) as first:
            first.store_tokens("google", "ws", "u", "persisted", expires_in=600)
        with self.open_vault(database_url, cache_url, key) as second:
            assert second.get_tokens("google", "ws", "u")["access_token"] == "persisted"

    def test_the_other_flavour_behaves_the_same(self, database_url, cache_url, key, vault):
        """The sync vault and the async one share rows (and cache entries) both ways."""
        vault.store_tokens("google", "ws", "other", "vault-token", expires_in=600)
        with self.open_twin(database_url, cache_url, key) as twin:
            twin.store_tokens("google", "ws", "u", "twin-token", "r", 600, "s")
            got = twin.get_tokens("google", "ws", "u")
            listed = twin.list_connections()
            deleted = twin.delete_tokens("google", "ws", "u")
            gone = twin.get_tokens("google", "ws", "u")
            again = twin.delete_tokens("google", "ws", "u")
        assert got["access_token"] == "twin-token"
        assert got["refresh_token"] == "r"
        assert len(listed) == 2
        assert (deleted, gone, again) == (True, None, False)
        # Each flavour reads what the other one wrote.
        assert vault.get_tokens("google", "ws", "other")["access_token"] == "vault-token"

    def test_backend_mode(self, vault, cache_url):
        assert vault.backend_mode == ("db+cache" if cache_url else "db-only")

    def forget_cache(self, vault):
        """Drop cached values so the next read must come from the database."""


class SyncFlavour:
    """The vault under test is an ``OAuthTokenCache``; its twin the async vault."""

    def open_vault(self, database_url, cache_url, key, **options):
        return OAuthTokenCache(database_url, cache_url, key, **options)

    def open_twin(self, database_url, cache_url, key, **options):
        return SyncFacade(AsyncOAuthTokenCache(database_url, cache_url, key, **options))


class AsyncFlavour:
    """The vault under test is an ``AsyncOAuthTokenCache`` (driven through a
    :class:`SyncFacade`); its twin the sync vault."""

    def open_vault(self, database_url, cache_url, key, **options):
        return SyncFacade(AsyncOAuthTokenCache(database_url, cache_url, key, **options))

    def open_twin(self, database_url, cache_url, key, **options):
        return OAuthTokenCache(database_url, cache_url, key, **options)


class SqliteBackend:
    @pytest.fixture
    def database_url(self, sqlite_url):
        return sqlite_url

    @pytest.fixture
    def raw_sql(self, sqlite_url):
        path = sqlite_url.removeprefix("sqlite:///")

        def run(statement):
            # closing(): a sqlite3 connection's own `with` commits but never closes it.
            with closing(sqlite3.connect(path)) as connection:
                rows = connection.execute(statement).fetchall()
                connection.commit()
                return rows

        return run


class PostgresBackend:
    @pytest.fixture
    def database_url(self, pg, postgres_url):
        return postgres_url

    @pytest.fixture
    def raw_sql(self, pg):
        def run(statement):
            cursor = pg.execute(statement)
            return cursor.fetchall() if cursor.description else []

        return run


class NoCache:
    @pytest.fixture
    def cache_url(self):
        return None


class WithRedis:
    @pytest.fixture
    def cache_url(self, redis_url):
        self.redis_url = redis_url
        return redis_url

    def forget_cache(self, vault):
        with redis.Redis.from_url(self.redis_url) as client:
            client.flushdb()


class WithRedisCluster:
    """REDIS_URL names one node of a three-master cluster: the vault finds out."""

    @pytest.fixture
    def cache_url(self, redis_cluster):
        self.cluster = redis_cluster
        redis_cluster.flush()
        return redis_cluster.url

    def forget_cache(self, vault):
        self.cluster.flush()


class TestSqliteDbOnly(SyncFlavour, SqliteBackend, NoCache, VaultContract):
    pass


class TestSqliteWithRedis(SyncFlavour, SqliteBackend, WithRedis, VaultContract):
    pass


class TestPostgresDbOnly(SyncFlavour, PostgresBackend, NoCache, VaultContract):
    pass


class TestPostgresWithRedis(SyncFlavour, PostgresBackend, WithRedis, VaultContract):
    pass


class TestAsyncSqliteDbOnly(AsyncFlavour, SqliteBackend, NoCache, VaultContract):
    pass


class TestAsyncSqliteWithRedis(AsyncFlavour, SqliteBackend, WithRedis, VaultContract):
    pass


class TestAsyncPostgresDbOnly(AsyncFlavour, PostgresBackend, NoCache, VaultContract):
    pass


class TestAsyncPostgresWithRedis(AsyncFlavour, PostgresBackend, WithRedis, VaultContract):
    pass


def test_other_key_cannot_read_the_rows(sqlite_url):
    with OAuthTokenCache(sqlite_url, encryption_key=generate_key()) as vault:
        vault.store_tokens("google", "ws", "u", "token", expires_in=60)
    with OAuthTokenCache(sqlite_url, encryption_key=generate_key()) as other:
        with pytest.raises(DecryptionError):
            other.get_tokens("google", "ws", "u")


# On the first Python only (scripts/test's `once`): the cluster client's routing does not
# depend on the interpreter, and a cluster run of the whole contract costs 15 s.
@pytest.mark.slow
@pytest.mark.once
class TestPostgresWithRedisCluster(SyncFlavour, PostgresBackend, WithRedisCluster, VaultContract):
    pass


@pytest.mark.slow
@pytest.mark.once
class TestAsyncPostgresWithRedisCluster(
    AsyncFlavour, PostgresBackend, WithRedisCluster, VaultContract
):
    pass
