from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from oauthvault import DecryptionError, KeyRing, TokenKey, TokenSet
from oauthvault.crypto.sealing import (
    SealedRow,
    open_cache_record,
    open_row,
    seal_cache_record,
    seal_row,
)

RING = KeyRing.generate()
ALICE = TokenKey("google", "ws_a", "alice")
BOB = TokenKey("google", "ws_b", "bob")
TOKENS = TokenSet("alice-access", "alice-refresh", datetime(2030, 1, 1, tzinfo=UTC), "mail")


def test_row_round_trip():
    assert open_row(RING, ALICE, seal_row(RING, ALICE, TOKENS)) == TOKENS


def test_a_row_moved_to_another_connection_does_not_decrypt():
    with pytest.raises(DecryptionError):
        open_row(RING, BOB, seal_row(RING, ALICE, TOKENS))


def test_swapping_access_and_refresh_fields_does_not_decrypt():
    row = seal_row(RING, ALICE, TOKENS)
    swapped = SealedRow(
        row.refresh_token_encrypted or "",
        row.access_token_encrypted,
        row.key_id,
        row.expires_at,
        row.scope,
    )
    with pytest.raises(DecryptionError):
        open_row(RING, ALICE, swapped)


def test_cache_record_moved_to_another_key_does_not_decrypt():
    with pytest.raises(DecryptionError):
        open_cache_record(RING, BOB, seal_cache_record(RING, ALICE, TOKENS))


def test_row_ciphertext_is_not_a_cache_record():
    row = seal_row(RING, ALICE, TOKENS)
    import binascii

    with pytest.raises(DecryptionError):
        open_cache_record(RING, ALICE, binascii.a2b_base64(row.access_token_encrypted))


def test_garbage_base64_in_a_row_is_a_decryption_error():
    row = SealedRow("***not base64***", None, "x", None, None)
    with pytest.raises(DecryptionError):
        open_row(RING, ALICE, row)


printable = st.text(
    alphabet=st.characters(blacklist_categories=("Cc", "Cs")), min_size=1, max_size=300
)
moments = st.datetimes(
    min_value=datetime(1971, 1, 1), max_value=datetime(2200, 1, 1), timezones=st.just(UTC)
)


@given(
    access=printable,
    refresh=st.none() | printable,
    expires_at=st.none() | moments,
    scope=st.none() | st.just("") | printable,
)
def test_cache_record_round_trip_keeps_none_and_empty_apart(access, refresh, expires_at, scope):
    tokens = TokenSet(access, refresh, expires_at, scope)
    assert open_cache_record(RING, ALICE, seal_cache_record(RING, ALICE, tokens)) == tokens


@given(access=printable, refresh=st.none() | printable)
def test_row_round_trip_property(access, refresh):
    tokens = TokenSet(access, refresh, datetime(2030, 1, 1, tzinfo=UTC) + timedelta(1), None)
    assert open_row(RING, ALICE, seal_row(RING, ALICE, tokens)) == tokens


def test_a_refresh_token_removed_or_put_back_by_hand_is_an_integrity_error():
    import dataclasses

    ring = KeyRing.generate()
    key = TokenKey("google", "ws", "u")
    with_refresh = seal_row(ring, key, TokenSet("access", "refresh", None, None))
    alone = seal_row(ring, key, TokenSet("access", None, None, None))
    assert open_row(ring, key, with_refresh).refresh_token == "refresh"
    assert open_row(ring, key, alone).refresh_token is None
    with pytest.raises(DecryptionError):  # its refresh column set to NULL
        open_row(ring, key, dataclasses.replace(with_refresh, refresh_token_encrypted=None))
    with pytest.raises(DecryptionError):  # an old refresh ciphertext of its own put back
        open_row(
            ring,
            key,
            dataclasses.replace(
                alone, refresh_token_encrypted=with_refresh.refresh_token_encrypted
            ),
        )


def test_rows_sealed_before_the_refresh_binding_still_open():
    import binascii

    from oauthvault.crypto.envelope import seal
    from oauthvault.crypto.sealing import ACCESS_FIELD, SealedRow, associated_data

    ring = KeyRing.generate()
    key = TokenKey("google", "ws", "u")
    legacy = seal(ring, b"old-access", associated_data(key, ACCESS_FIELD), "token-row")
    row = SealedRow(
        binascii.b2a_base64(legacy, newline=False).decode(),
        None,
        ring.primary.key_id_hex,
        None,
        None,
    )
    assert open_row(ring, key, row).access_token == "old-access"
