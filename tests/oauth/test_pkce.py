"""PKCE pairs follow RFC 7636: fixed vector, fresh random verifiers, hidden secrets."""

from __future__ import annotations

import base64
import hashlib
import re

import pytest

from oauthvault import InvalidInput
from oauthvault.oauth.pkce import PKCEPair

# RFC 7636 Appendix B: the 32 octets, the verifier they encode to, and its S256 challenge.
RFC_OCTETS = bytes(
    [116, 24, 223, 180, 151, 153, 224, 37, 79, 250, 96, 125, 216, 173, 187, 186,
     22, 212, 37, 77, 105, 214, 191, 240, 91, 88, 5, 88, 83, 132, 141, 121]
)  # fmt: skip
RFC_VERIFIER = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
RFC_CHALLENGE = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
UNRESERVED = re.compile(r"^[A-Za-z0-9\-._~]+$")


def s256(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def test_rfc_7636_appendix_b_vector():
    assert base64.urlsafe_b64encode(RFC_OCTETS).rstrip(b"=").decode() == RFC_VERIFIER
    pair = PKCEPair.from_verifier(RFC_VERIFIER)
    assert pair.challenge == RFC_CHALLENGE
    assert pair.method == "S256"


def test_generated_verifiers_are_unique_long_enough_and_unreserved():
    pairs = [PKCEPair.generate() for _ in range(500)]
    assert len({pair.verifier for pair in pairs}) == len(pairs)
    for pair in pairs:
        assert 43 <= len(pair.verifier) <= 128
        assert UNRESERVED.match(pair.verifier)
        # At least 256 bits: 43 base64url characters carry 258.
        assert len(pair.verifier) * 6 >= 256
        assert pair.challenge == s256(pair.verifier)
        assert len(pair.challenge) == 43


def test_verifier_is_hidden_from_repr_and_str():
    pair = PKCEPair.generate()
    for shown in (repr(pair), str(pair), f"{pair}"):
        assert pair.verifier not in shown
        assert pair.challenge in shown


@pytest.mark.parametrize(
    "verifier",
    ["", "short", "a" * 42, "a" * 129, "a" * 42 + "+", "a" * 42 + "/", "a" * 42 + "=", "é" * 43],
)
def test_malformed_verifiers_are_rejected(verifier):
    with pytest.raises(InvalidInput) as caught:
        PKCEPair.from_verifier(verifier)
    assert caught.value.argument == "verifier"
    if verifier:
        assert verifier not in str(caught.value)


def test_boundary_lengths_are_accepted():
    for length in (43, 128):
        verifier = "A-._~" * 30
        assert PKCEPair.from_verifier(verifier[:length]).challenge == s256(verifier[:length])
