from datetime import UTC, datetime, timedelta, timezone

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

    from oauthvault.crypto.sealing import ACCESS_FIELD, SealedRow, associated_data

    from tests.helpers.earlier_seal import seal_as_version_1

    ring = KeyRing.generate()
    key = TokenKey("google", "ws", "u")
    legacy = seal_as_version_1(ring, b"old-access", associated_data(key, ACCESS_FIELD))
    row = SealedRow(
        binascii.b2a_base64(legacy, newline=False).decode(),
        None,
        ring.primary.key_id_hex,
        None,
        None,
    )
    assert open_row(ring, key, row).access_token == "old-access"


BOUND = TokenSet(
    "access",
    "refresh",
    datetime(2030, 1, 1, tzinfo=UTC),
    "api",
    {"instance_url": "https://acme.my.salesforce.com"},
    issued_at=datetime(2029, 12, 31, 23, tzinfo=UTC),
)


@pytest.mark.parametrize(
    "change",
    [
        {"expires_at": None},
        {"expires_at": datetime(2031, 1, 1, tzinfo=UTC)},
        {"scope": None},
        {"scope": ""},
        {"scope": "api full"},
        {"params": None},
        {"params": '{"instance_url":"https://evil.example.com"}'},
        {"issued_at": None},
        {"issued_at": datetime(2029, 12, 31, 22, tzinfo=UTC)},
        {"scope": None, "params": "api"},  # a value moved to the next column
    ],
)
def test_a_value_handed_out_with_the_token_changed_in_the_row_does_not_decrypt(change):
    import dataclasses

    row = seal_row(RING, ALICE, BOUND)
    assert open_row(RING, ALICE, row) == BOUND
    with pytest.raises(DecryptionError):
        open_row(RING, ALICE, dataclasses.replace(row, **change))


def test_the_binding_reads_the_same_moment_in_any_time_zone():
    import dataclasses

    row = seal_row(RING, ALICE, BOUND)
    elsewhere = timezone(timedelta(hours=-5))
    moved = dataclasses.replace(
        row,
        expires_at=row.expires_at.astimezone(elsewhere),
        issued_at=row.issued_at.astimezone(elsewhere),
    )
    assert open_row(RING, ALICE, moved).access_token == "access"


def test_rows_sealed_before_the_row_binding_still_open_and_are_bound_when_sealed_again():
    import binascii
    import dataclasses

    from oauthvault.crypto.sealing import ACCESS_WITH_REFRESH, associated_data

    from tests.helpers.earlier_seal import seal_as_version_1

    ring = KeyRing.generate()
    earlier = seal_as_version_1(ring, b"access", associated_data(ALICE, ACCESS_WITH_REFRESH))
    row = dataclasses.replace(
        seal_row(ring, ALICE, BOUND),
        access_token_encrypted=binascii.b2a_base64(earlier, newline=False).decode(),
    )
    assert open_row(ring, ALICE, row) == BOUND
    # Nothing binds its values yet (a row of the previous version): they read as stored.
    assert open_row(ring, ALICE, dataclasses.replace(row, scope="x")).scope == "x"
    again = seal_row(ring, ALICE, open_row(ring, ALICE, row))
    with pytest.raises(DecryptionError):
        open_row(ring, ALICE, dataclasses.replace(again, scope="x"))


def test_a_new_value_never_opens_without_its_row_binding():
    """Only a version-1 value (sealed before subkeys) may be a row of a version before the
    row binding: a version-2 access token sealed without the row's values is refused."""
    import binascii
    import dataclasses

    from oauthvault.crypto.envelope import seal
    from oauthvault.crypto.sealing import ACCESS_WITH_REFRESH, associated_data

    ring = KeyRing.generate()
    unbound = seal(ring, b"access", associated_data(ALICE, ACCESS_WITH_REFRESH), "token-row")
    row = dataclasses.replace(
        seal_row(ring, ALICE, BOUND),
        access_token_encrypted=binascii.b2a_base64(unbound, newline=False).decode(),
    )
    with pytest.raises(DecryptionError):
        open_row(ring, ALICE, row)
