"""Key rings from OAUTH_ENCRYPTION_KEY: accepted forms, and errors that never echo a key."""

import base64

import pytest
from cryptography.fernet import Fernet

from oauthvault import ConfigError, KeyRing, generate_key


def test_a_fernet_key_is_a_valid_key():
    ring = KeyRing.from_text(Fernet.generate_key().decode())
    assert len(ring) == 1


def test_unpadded_keys_are_accepted():
    key = generate_key()
    assert KeyRing.from_text(key.rstrip("=")).key_ids == KeyRing.from_text(key).key_ids


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("", "entry 1 is empty"),
        ("not base64 at all!!", "entry 1 is not url-safe base64"),
        (base64.urlsafe_b64encode(b"short").decode(), "entry 1 decodes to 5 bytes"),
        (f"{'A' * 43}=,", "entry 2 is empty"),
    ],
)
def test_bad_keys_are_config_errors_that_do_not_echo_the_value(text, fragment):
    with pytest.raises(ConfigError) as caught:
        KeyRing.from_text(text)
    assert caught.value.setting == "OAUTH_ENCRYPTION_KEY"
    assert fragment in str(caught.value)
    if text:
        assert text.split(",")[0] not in str(caught.value)


def test_a_key_listed_twice_is_refused():
    key = generate_key()
    with pytest.raises(ConfigError, match="twice"):
        KeyRing.from_text(f"{key},{key}")


def test_a_key_with_anything_after_its_encoding_is_refused():
    from oauthvault import ConfigError, generate_key

    good = generate_key()
    KeyRing.from_text(good)  # as generated
    KeyRing.from_text(good.rstrip("="))  # without its padding
    for bad in (good + "x", good[:-2] + "!=", good + "AAAA"):
        try:
            KeyRing.from_text(bad)
        except ConfigError as error:
            assert "entry 1" in str(error) and good not in str(error)
        else:
            raise AssertionError("a malformed key was accepted")
