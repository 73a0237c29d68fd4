"""What the token API hands out with a token (expiry, scope, connection parameters) is
bound to the sealed row: someone who can write the database but holds no key cannot send
a valid token to another host by editing the row. Run on both backends and both flavours,
with and without Redis in front (the contract's mixins)."""

from __future__ import annotations

import binascii

import pytest

from oauthvault import DecryptionError, InvalidInput, TokenKey, TokenSet, generate_key
from oauthvault.crypto.sealing import ACCESS_WITH_REFRESH, associated_data, seal_cache_record
from oauthvault.providers.catalog import load_catalog
from oauthvault.vault.flows import VaultCore

from tests.helpers.earlier_seal import seal_as_version_1
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
EVIL = """UPDATE oauth_tokens SET connection_params =
    '{"hostname":"login.salesforce.com","instance_url":"https://evil.example.com"}'"""


def as_earlier_version(vault, raw_sql, access_token):
    """Make the stored row one of the version before the row binding: its access token
    bound to the connection and the refresh token's presence only."""
    sealed = seal_as_version_1(
        vault.keyring,
        access_token.encode(),
        associated_data(TokenKey(*SALESFORCE), ACCESS_WITH_REFRESH),
    )
    text = binascii.b2a_base64(sealed, newline=False).decode()
    statement = f"UPDATE oauth_tokens SET access_token_encrypted = '{text}'"  # noqa: S608 - our base64
    raw_sql(statement)


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

    def test_a_row_of_an_earlier_version_still_opens(self, vault, raw_sql):
        self.store(vault)
        as_earlier_version(vault, raw_sql, "earlier-access")
        self.forget_cache(vault)
        tokens = vault.get_tokens(*SALESFORCE)
        assert (tokens.access_token, tokens.params) == ("earlier-access", PARAMS)

    def test_a_value_breaking_the_catalog_pattern_is_refused_on_every_read(self, vault, raw_sql):
        # A row of the earlier version binds none of its values: the catalog's pattern
        # for instance_url still keeps the token from going to another host.
        self.store(vault)
        as_earlier_version(vault, raw_sql, "earlier-access")
        raw_sql(EVIL)
        self.forget_cache(vault)
        for read in (vault.get_tokens, vault.get_stored_tokens, vault.get_access_token):
            with pytest.raises(DecryptionError):
                read(*SALESFORCE)
        [listed] = vault.list_connections(workspace_id="ws_sf")
        assert listed.status == "undecryptable"

    def test_rotation_does_not_bind_a_value_breaking_the_pattern(
        self, database_url, cache_url, key, clock, raw_sql
    ):
        with self.open_vault(database_url, cache_url, key, clock=clock) as vault:
            self.store(vault)
            as_earlier_version(vault, raw_sql, "earlier-access")
            raw_sql(EVIL)
        with self.open_vault(database_url, cache_url, f"{generate_key()},{key}") as vault:
            report = vault.rotate_key()
            assert (report.rotated, report.undecryptable) == (0, [TokenKey(*SALESFORCE)])
            self.forget_cache(vault)
            with pytest.raises(DecryptionError):
                vault.get_tokens(*SALESFORCE)

    def test_a_value_breaking_the_catalog_pattern_is_not_stored(self, vault):
        evil = {**PARAMS, "instance_url": "https://evil.example.com"}
        with pytest.raises(InvalidInput) as caught:
            vault.store_tokens(*SALESFORCE, "sf-access", params=evil)
        assert caught.value.argument == "params.instance_url"
        assert "evil" not in str(caught.value)
        assert vault.get_tokens(*SALESFORCE) is None


def test_a_cache_record_breaking_the_catalog_pattern_is_not_served():
    from datetime import UTC, datetime

    from oauthvault import KeyRing

    ring = KeyRing.generate()
    declared = load_catalog()["salesforce"].connection_params
    core = VaultCore(ring, lambda: datetime.now(UTC), True, 60, lambda provider: declared)
    key = TokenKey(*SALESFORCE)
    good = TokenSet("a", None, None, None, PARAMS, version=3)
    evil = TokenSet("a", None, None, None, {"instance_url": "https://evil.example.com"}, version=3)
    assert core.open_record(key, seal_cache_record(ring, key, good), 3) == good
    assert core.open_record(key, seal_cache_record(ring, key, evil), 3) is None


class TestSqliteDbOnly(SyncFlavour, SqliteBackend, NoCache, RowBindingContract):
    pass


class TestAsyncSqliteWithRedis(AsyncFlavour, SqliteBackend, WithRedis, RowBindingContract):
    pass


class TestPostgresWithRedis(SyncFlavour, PostgresBackend, WithRedis, RowBindingContract):
    pass


class TestAsyncPostgresDbOnly(AsyncFlavour, PostgresBackend, NoCache, RowBindingContract):
    pass
