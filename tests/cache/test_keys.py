from hypothesis import assume, given
from hypothesis import strategies as st

from oauthvault import TokenKey
from oauthvault.cache import cache_key

PREFIX = "oauth:token:"


def parse_cache_key(text):
    """The inverse of cache_key, written out here: the key format is a documented contract."""
    assert text.startswith(PREFIX)
    parts = text[len(PREFIX) :].split(":")
    assert len(parts) == 3
    return TokenKey(*(part.replace("%3A", ":").replace("%25", "%") for part in parts))


def test_plain_ids_give_the_seed_design_key():
    key = TokenKey("google", "ws_abc123", "user_456")
    assert cache_key(key) == "oauth:token:google:ws_abc123:user_456"


def test_colons_cannot_make_two_connections_share_a_key():
    assert cache_key(TokenKey("google", "a:b", "c")) != cache_key(TokenKey("google", "a", "b:c"))


def test_an_escape_sequence_in_an_id_is_itself_escaped():
    literal = TokenKey("google", "a%3Ab", "c")
    escaped = TokenKey("google", "a:b", "c")
    assert cache_key(literal) != cache_key(escaped)
    assert parse_cache_key(cache_key(literal)) == literal


ids = st.text(
    alphabet=st.sampled_from(["a", "%", ":", "3", "A", "2", "5", "é", "_"]), min_size=1, max_size=12
)
keys = st.builds(TokenKey, ids, ids, ids)


@given(keys, keys)
def test_different_connections_never_share_a_key(first, second):
    assume(first != second)
    assert cache_key(first) != cache_key(second)


@given(keys)
def test_keys_parse_back(key):
    assert parse_cache_key(cache_key(key)) == key
