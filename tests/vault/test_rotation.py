"""Key rotation: old keys keep reading, rotate re-seals in batches, resumable, online; the
same tests drive both flavours (the async vault through tests/helpers/sync_facade.py)."""

from __future__ import annotations

import pytest

from oauthvault import AsyncOAuthTokenCache, DecryptionError, OAuthTokenCache, generate_key

from tests.helpers.sync_facade import SyncFacade


@pytest.fixture(params=["sync", "async"])
def Vault(request):  # named as the vault class it stands for in `with Vault(...)`
    if request.param == "sync":
        return OAuthTokenCache
    return lambda *args, **kwargs: SyncFacade(AsyncOAuthTokenCache(*args, **kwargs))


def fill(vault, count):
    for index in range(count):
        vault.store_tokens("google", "ws", f"user{index:03d}", f"access-{index}", f"r-{index}", 600)


def test_rotation_reseals_every_row_with_the_newest_key(Vault, database_url, redis_url, raw_redis):
    old, new = generate_key(), generate_key()
    with Vault(database_url, redis_url, old) as before:
        fill(before, 25)
        old_id = before.keyring.primary.key_id_hex
    with Vault(database_url, redis_url, f"{new},{old}") as vault:
        # Reads keep working on the old key before and during rotation.
        assert vault.get_tokens("google", "ws", "user003")["access_token"] == "access-3"
        assert vault.count_by_key_id() == {old_id: 25}
        batches = []
        report = vault.rotate_key(batch_size=10, on_batch=batches.append)
        new_id = vault.keyring.primary.key_id_hex
        assert report.rotated == 25
        assert batches == [10, 20, 25]
        assert report.undecryptable == []
        assert report.remaining_by_key_id == {new_id: 25}
        assert raw_redis.keys("oauth:token:*") == []  # entries sealed with the old key dropped
    # The old key can now be removed from the ring.
    with Vault(database_url, redis_url, new) as after:
        for index in range(25):
            tokens = after.get_tokens("google", "ws", f"user{index:03d}")
            assert tokens["access_token"] == f"access-{index}"
            assert tokens["refresh_token"] == f"r-{index}"


def test_an_interrupted_rotation_leaves_every_row_readable_and_can_resume(Vault, database_url):
    old, new = generate_key(), generate_key()
    with Vault(database_url, encryption_key=old) as before:
        fill(before, 30)

    class Killed(Exception):
        pass

    def die_after_first_batch(done):
        raise Killed

    ring = f"{new},{old}"
    with Vault(database_url, encryption_key=ring) as vault:
        with pytest.raises(Killed):
            vault.rotate_key(batch_size=10, on_batch=die_after_first_batch)
        counts = vault.count_by_key_id()
        assert sorted(counts.values()) == [10, 20]
        for index in range(30):
            assert vault.get_tokens("google", "ws", f"user{index:03d}") is not None
        report = vault.rotate_key(batch_size=10)
        assert report.rotated == 20
        assert report.remaining_by_key_id == {vault.keyring.primary.key_id_hex: 30}


def test_rows_no_key_can_open_are_reported_and_left_alone(Vault, database_url):
    lost, old, new = generate_key(), generate_key(), generate_key()
    with Vault(database_url, encryption_key=lost) as other:
        other.store_tokens("google", "ws", "orphan", "x", expires_in=60)
    with Vault(database_url, encryption_key=old) as before:
        fill(before, 3)
    with Vault(database_url, encryption_key=f"{new},{old}") as vault:
        report = vault.rotate_key(batch_size=2)
        assert report.rotated == 3
        assert [key.actor_id for key in report.undecryptable] == ["orphan"]
        with pytest.raises(DecryptionError):
            vault.get_tokens("google", "ws", "orphan")


def test_rotation_with_nothing_to_do(Vault, database_url):
    with Vault(database_url, encryption_key=generate_key()) as vault:
        fill(vault, 2)
        report = vault.rotate_key()
        assert report.rotated == 0
