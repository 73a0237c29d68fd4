from datetime import UTC, datetime, timedelta

import pytest

from oauthvault import InvalidInput, TokenKey, TokenSet
from oauthvault.models import ClientCredentials, assemble_token_set, validate_tokens


@pytest.mark.parametrize(
    ("provider", "workspace_id", "actor_id", "argument"),
    [
        ("", "ws", "u", "provider"),
        ("google", "", "u", "workspace_id"),
        ("google", "ws", "", "actor_id"),
        ("g" * 51, "ws", "u", "provider"),
        ("google", "w" * 256, "u", "workspace_id"),
        ("google", "ws", "u" * 256, "actor_id"),
        (123, "ws", "u", "provider"),
        ("google", None, "u", "workspace_id"),
        ("google", "ws", b"u", "actor_id"),
        ("goo\x00gle", "ws", "u", "provider"),
        ("google", "ws\n1", "u", "workspace_id"),
        ("google", "ws", "u\x7f", "actor_id"),
        ("google", "ws", "u\ud800", "actor_id"),
    ],
)
def test_bad_ids_are_rejected_naming_the_argument(provider, workspace_id, actor_id, argument):
    with pytest.raises(InvalidInput) as caught:
        TokenKey(provider, workspace_id, actor_id)
    assert caught.value.argument == argument
    assert isinstance(caught.value, ValueError)


def test_ids_at_the_length_limits_are_accepted():
    TokenKey("g" * 50, "w" * 255, "u" * 255)


def test_ids_are_exact_strings():
    assert TokenKey("google", "WS", "u") != TokenKey("google", "ws", "u")
    assert TokenKey("google", " ws", "u") != TokenKey("google", "ws", "u")
    composed, decomposed = "caf\u00e9", "cafe\u0301"
    assert TokenKey("google", composed, "u") != TokenKey("google", decomposed, "u")


@pytest.mark.parametrize(
    ("access", "refresh", "expires_in", "scope", "argument"),
    [
        ("", None, None, None, "access_token"),
        (None, None, None, None, "access_token"),
        ("a" * 16_385, None, None, None, "access_token"),
        ("\U0001f600" * 5_000, None, None, None, "access_token"),  # 20,000 bytes of emoji
        ("a", "\u00e9" * 8_193, None, None, "refresh_token"),  # 16,386 bytes
        ("tok\nen", None, None, None, "access_token"),
        ("a", "", None, None, "refresh_token"),
        ("a", 5, None, None, "refresh_token"),
        ("a", None, -1, None, "expires_in"),
        ("a", None, True, None, "expires_in"),
        ("a", None, 3600.5, None, "expires_in"),
        ("a", None, "3600", None, "expires_in"),
        ("a", None, 10**12, None, "expires_in"),
        ("a", None, None, 7, "scope"),
        ("a", None, None, "s" * 8193, "scope"),
        ("a", None, None, "a\x00b", "scope"),
    ],
)
def test_bad_token_arguments_are_rejected(access, refresh, expires_in, scope, argument):
    with pytest.raises(InvalidInput) as caught:
        validate_tokens(access, refresh, expires_in, scope)
    assert caught.value.argument == argument


def test_a_token_of_exactly_16_kib_of_utf8_is_accepted():
    validate_tokens("\U0001f600" * 4_096, "a" * 16_384, None, None)


def test_the_token_size_message_counts_bytes_and_quotes_no_token():
    emoji = "\U0001f600" * 5_000
    with pytest.raises(InvalidInput) as caught:
        validate_tokens(emoji, None, None, None)
    assert "16384 bytes" in str(caught.value)
    assert emoji[:10] not in str(caught.value)


def test_token_set_is_a_read_only_mapping():
    expires = datetime(2030, 1, 1, tzinfo=UTC)
    tokens = TokenSet("at", "rt", expires, "a b")
    assert tokens["access_token"] == "at"
    assert tokens["refresh_token"] == "rt"
    assert tokens["expires_at"] == expires
    assert tokens["scope"] == "a b"
    assert dict(tokens) == {
        "access_token": "at",
        "refresh_token": "rt",
        "expires_at": expires,
        "scope": "a b",
    }
    with pytest.raises(KeyError):
        tokens["id_token"]
    with pytest.raises(TypeError):
        tokens["access_token"] = "other"  # type: ignore[index]
    with pytest.raises(AttributeError):
        tokens.access_token = "other"  # type: ignore[misc]


def test_an_assembled_token_set_is_the_one_the_dataclass_builds():
    expires = datetime(2030, 1, 1, tzinfo=UTC)
    issued = datetime(2029, 12, 31, 23, tzinfo=UTC)
    credentials = ClientCredentials("client-id", "client-secret")
    parts = (
        "access-secret",
        "refresh-secret",
        expires,
        "a b",
        {"shop": "s"},
        credentials,
        issued,
        7,
    )
    built = TokenSet(*parts)
    assembled = assemble_token_set(*parts)
    assert type(assembled) is TokenSet
    for name in TokenSet.__dataclass_fields__:
        assert getattr(assembled, name) == getattr(built, name), name
    assert assembled == built
    assert repr(assembled) == repr(built)
    assert "secret" not in repr(assembled)
    with pytest.raises(AttributeError):
        assembled.access_token = "other"  # type: ignore[misc]


def test_seconds_left():
    now = datetime(2030, 1, 1, tzinfo=UTC)
    assert TokenSet("a", None, None, None).seconds_left(now) is None
    later = now.replace(minute=1)
    assert TokenSet("a", None, later, None).seconds_left(now) == 60


def test_tokens_last_while_min_ttl_is_left_or_until_the_last_quarter_of_a_short_life():
    now = datetime(2030, 1, 1, tzinfo=UTC)
    hour = TokenSet("a", "r", now + timedelta(hours=1), None, issued_at=now)
    assert hour.lasts(60, now + timedelta(seconds=3540))  # 60 s left: as asked
    assert not hour.lasts(60, now + timedelta(seconds=3541))
    assert hour.lasts(3601, now + timedelta(seconds=2700))  # asks for more than it lives
    assert not hour.lasts(3601, now + timedelta(seconds=2701))  # its last quarter
    assert TokenSet("a", None, None, None).lasts(10**9, now)  # no expiry: always
    assert not TokenSet("a", None, now, None).lasts(0.001, now)  # unknown lifetime: min_ttl
    issued = now - timedelta(seconds=3)
    five = TokenSet("a", "r", issued + timedelta(seconds=5), None, issued_at=issued)
    assert five.lasts(60, now)  # 2 s left of 5: not yet in the last quarter (1.25 s)
    assert five.lasts(60, now + timedelta(seconds=0.75))  # exactly 1.25 s left
    assert not five.lasts(60, now + timedelta(seconds=1))
    for moment in (now, now + timedelta(seconds=1), now + timedelta(seconds=4)):
        for min_ttl in (0, 1, 2, 60):
            left = five.seconds_left(moment)
            assert five.lasts(min_ttl, moment) == (left >= five.needed_ttl(min_ttl))


def test_has_left_is_the_plain_seconds_test():
    now = datetime(2030, 1, 1, tzinfo=UTC)
    issued = now - timedelta(seconds=3)
    five = TokenSet("a", "r", issued + timedelta(seconds=5), None, issued_at=issued)
    assert five.has_left(2, now) and not five.has_left(2.001, now)
    assert not five.has_left(60, now)  # no allowance for a short life, unlike lasts
    assert TokenSet("a", None, None, None).has_left(10**9, now)
