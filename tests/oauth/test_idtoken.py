"""id_token verification: signature, issuer, audience, nonce and expiry are all enforced."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import ECKey, KeySet

from oauthvault import ProviderError
from oauthvault.oauth.idtoken import JWKSCache, verify_id_token

ISSUER = "https://login.example.com"
SIGNING = ECKey.generate_key("P-256", parameters={"kid": "k1"})
OTHER = ECKey.generate_key("P-256", parameters={"kid": "k1"})


def sign(key=SIGNING, **overrides):
    now = int(time.time())
    claims = {
        "iss": ISSUER,
        "aud": "client-1",
        "sub": "alice",
        "iat": now,
        "exp": now + 300,
        "nonce": "n-1",
        **overrides,
    }
    claims = {name: value for name, value in claims.items() if value is not None}
    return jwt.encode({"alg": "ES256", "kid": "k1"}, claims, key)


class FixedKeys(JWKSCache):
    """The issuer's published keys, as discovery would fetch them (its host is not here)."""

    def __init__(self, http):
        super().__init__(http)
        self.fetches = 0

    async def keys(self, issuer, *, refresh=False):
        assert issuer == ISSUER
        self.fetches += 1
        return KeySet([SIGNING])


def verify(token, nonce="n-1"):
    async def run():
        async with httpx.AsyncClient() as http:
            keys = FixedKeys(http)
            return await verify_id_token(
                token, issuer=ISSUER, client_id="client-1", nonce=nonce, jwks=keys
            )

    return asyncio.run(run())


def test_a_valid_id_token_gives_its_claims():
    assert verify(sign())["sub"] == "alice"


@pytest.mark.parametrize(
    "token",
    [
        pytest.param(lambda: sign(key=OTHER), id="signed by another key"),
        pytest.param(lambda: sign(iss="https://evil.example.com"), id="other issuer"),
        pytest.param(lambda: sign(aud="someone-else"), id="other audience"),
        pytest.param(lambda: sign(nonce="replayed"), id="other nonce"),
        pytest.param(lambda: sign(nonce=None), id="missing nonce"),
        pytest.param(lambda: sign(exp=int(time.time()) - 60), id="expired"),
        pytest.param(lambda: "not.a.jwt", id="garbage"),
    ],
)
def test_a_bad_id_token_is_refused(token):
    with pytest.raises(ProviderError) as caught:
        verify(token())
    assert caught.value.error == "invalid_id_token"
