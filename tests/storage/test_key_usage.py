"""Encryptions per key: counted in process, written in batches to ``oauth_key_usage``,
summed across instances and restarts (issue 26; each test failed before it: nothing
counted encryptions)."""

from __future__ import annotations

import asyncio

import pytest

from oauthvault import AsyncOAuthTokenCache, KeyRing, OAuthTokenCache, generate_key
from oauthvault.crypto.usage import ENCRYPTION_LIMIT, EncryptionCounter, usage_level
from oauthvault.errors import StorageUnavailable
from oauthvault.storage.key_usage import KeyUsageRecorder, read_key_usage, write_key_usage
from oauthvault.storage.location import parse_database_url


def test_the_limit_is_well_under_the_random_nonce_bound():
    assert ENCRYPTION_LIMIT == 2**30 < 2**32
    assert usage_level(2**29) == "ok"
    assert usage_level(2**29 + 1) == "warn"
    assert usage_level(2**30) == "over"


def test_counts_taken_and_given_back_are_not_lost():
    counter = EncryptionCounter()
    counter.add(b"\x00\x00\x00\x01")
    assert counter.take() == {"00000001": 1}
    counter.add(b"\x00\x00\x00\x01")
    assert counter.totals() == {"00000001": 2}  # one in flight, one pending
    counter.give_back()
    assert counter.take() == {"00000001": 2}
    counter.settle({"00000001": 7})  # the database's total, other instances' included
    assert counter.totals() == {"00000001": 7}


def test_the_writer_is_woken_once_flush_every_counts_wait():
    counter = EncryptionCounter(flush_every=3)
    woken = []
    counter.when_due(lambda: woken.append(1))
    for _ in range(5):
        counter.add(b"\x00\x00\x00\x01")
    assert len(woken) == 1  # once, until the writer takes them
    counter.take()
    for _ in range(3):
        counter.add(b"\x00\x00\x00\x01")
    assert len(woken) == 2


class KeyUsageContract:
    @pytest.fixture
    def url(self):
        raise NotImplementedError

    def test_stores_count_and_the_count_survives_a_restart(self, url):
        key = generate_key()
        key_id = KeyRing.from_text(key).key_ids[0]
        with OAuthTokenCache(url, encryption_key=key) as vault:
            vault.store_tokens("google", "ws_usage", "u", "ACCESS", "REFRESH", 600)
            vault.store_tokens("google", "ws_usage", "v", "ACCESS", None, 600)
            # Nothing written yet (batched), but counted: access + refresh, then access.
            counted = vault.key_encryptions()[key_id]
            assert counted >= 3
        assert read_key_usage(parse_database_url(url))[key_id] == counted
        with OAuthTokenCache(url, encryption_key=key) as again:
            assert again.key_usage.read()[key_id] == counted
            again.store_tokens("google", "ws_usage", "w", "ACCESS", None, 600)
            again.key_usage.flush()
            assert read_key_usage(parse_database_url(url))[key_id] > counted
            again.delete_tokens("google", "ws_usage", "u")
            again.delete_tokens("google", "ws_usage", "v")
            again.delete_tokens("google", "ws_usage", "w")

    def test_the_async_vault_counts_and_writes_on_close(self, url):
        key = generate_key()
        key_id = KeyRing.from_text(key).key_ids[0]

        async def scenario():
            async with AsyncOAuthTokenCache(url, encryption_key=key) as vault:
                await vault.store_tokens("google", "ws_usage_async", "u", "ACCESS", None, 600)
                await vault.delete_tokens("google", "ws_usage_async", "u")

        asyncio.run(scenario())
        assert read_key_usage(parse_database_url(url))[key_id] >= 1

    def test_instances_add_up(self, url):
        location = parse_database_url(url)
        key_id = KeyRing.generate().key_ids[0]
        write_key_usage(location, {key_id: 5})
        assert write_key_usage(location, {key_id: 2})[key_id] == 7

    def test_a_failed_write_keeps_the_counts(self, url, tmp_path):
        counter = EncryptionCounter()
        counter.add(b"\x00\x00\x00\x02")
        missing = parse_database_url(f"sqlite:///{tmp_path / 'none' / 'x.db'}")
        recorder = KeyUsageRecorder(missing, counter)
        with pytest.raises(StorageUnavailable):
            recorder.flush()
        assert counter.totals() == {"00000002": 1}
        working = KeyUsageRecorder(parse_database_url(url), counter)
        working.flush()
        assert read_key_usage(parse_database_url(url))["00000002"] >= 1


class TestSQLiteKeyUsage(KeyUsageContract):
    @pytest.fixture
    def url(self, sqlite_url):
        with OAuthTokenCache(sqlite_url, encryption_key=generate_key()) as vault:
            vault.list_connections(limit=1)  # creates the schema
        return sqlite_url


class TestPostgresKeyUsage(KeyUsageContract):
    @pytest.fixture
    def url(self, postgres_url):
        return postgres_url
