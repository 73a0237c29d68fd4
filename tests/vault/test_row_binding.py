"""What the token API hands out with a token (expiry, scope, connection parameters) is
bound to the sealed row: someone who can write the database but holds no key cannot send
a valid token to another host by editing the row. Run on both backends and both flavours,
with and without Redis in front (the contract's mixins)."""

from __future__ import annotations

import pytest

from oauthvault import DecryptionError

from tests.vault.test_contract import (
    AsyncFlavour,
    NoCache,
    PostgresBackend,
    SqliteBackend,
    SyncFlavour,
    WithRedis,
)

SALESFORCE = ("salesforce", "ws_sf", "alice")
PARAMS = {
    "hostname": "login.salesforce.com",
    "instance_url": "https://acme.my.salesforce.com",
}

# Each edits one value the token API returns beside the token, as an attacker would.
EDITS = {
    "params": """UPDATE oauth_tokens SET connection_params =
        '{"hostname":"login.salesforce.com","instance_url":"https://evil.example.com"}'""",
    "params_dropped": "UPDATE oauth_tokens SET connection_params = NULL",
    "expiry": "UPDATE oauth_tokens SET expires_at = NULL",
    "scope": "UPDATE oauth_tokens SET scope = 'api full'",
    "scope_dropped": "UPDATE oauth_tokens SET scope = NULL",
}


class RowBindingContract:
    def forget_cache(self, vault):
        """Drop cached values so the next read must come from the database."""

    @pytest.fixture
    def vault(self, database_url, cache_url, key, clock):
        with self.open_vault(database_url, cache_url, key, clock=clock) as vault:
            yield vault

    def store(self, vault):
        vault.store_tokens(*SALESFORCE, "sf-access", "sf-refresh", 3600, "api", params=PARAMS)

    def test_an_untouched_row_opens(self, vault):
        self.store(vault)
        self.forget_cache(vault)
        tokens = vault.get_tokens(*SALESFORCE)
        assert tokens.access_token == "sf-access" and tokens.params == PARAMS

    @pytest.mark.parametrize("edit", sorted(EDITS))
    def test_a_value_changed_in_the_row_is_an_integrity_error(self, vault, raw_sql, edit):
        self.store(vault)
        raw_sql(EDITS[edit])
        self.forget_cache(vault)
        for read in (vault.get_tokens, vault.get_stored_tokens, vault.get_access_token):
            with pytest.raises(DecryptionError):
                read(*SALESFORCE)
        [listed] = vault.list_connections(workspace_id="ws_sf")
        assert listed.status == "undecryptable"


class TestSqliteDbOnly(SyncFlavour, SqliteBackend, NoCache, RowBindingContract):
    pass


class TestAsyncSqliteWithRedis(AsyncFlavour, SqliteBackend, WithRedis, RowBindingContract):
    pass


class TestPostgresWithRedis(SyncFlavour, PostgresBackend, WithRedis, RowBindingContract):
    pass


class TestAsyncPostgresDbOnly(AsyncFlavour, PostgresBackend, NoCache, RowBindingContract):
    pass
