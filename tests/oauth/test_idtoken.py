"""id_token verification: signature, issuer, audience, nonce and expiry are all enforced."""

from __future__ import annotations

import asyncio
import time
import warnings

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
    "claims",
    [{"aud": ["client-1"]}, {"azp": "client-1"}, {"aud": ["client-1"], "azp": "client-1"}],
)
def test_our_client_id_as_the_only_audience_and_as_azp_verifies(claims):
    """OIDC Core §3.1.3.7: aud may be a one-item list; an azp that is us is fine."""
    assert verify(sign(**claims))["sub"] == "alice"


@pytest.mark.parametrize(
    "token",
    [
        pytest.param(lambda: sign(key=OTHER), id="signed by another key"),
        pytest.param(lambda: sign(iss="https://evil.example.com"), id="other issuer"),
        pytest.param(lambda: sign(aud="someone-else"), id="other audience"),
        pytest.param(lambda: sign(nonce="replayed"), id="other nonce"),
        pytest.param(lambda: sign(nonce=None), id="missing nonce"),
        pytest.param(lambda: sign(exp=int(time.time()) - 60), id="expired"),
        pytest.param(lambda: sign(aud=["client-1", "untrusted"]), id="extra audience"),
        pytest.param(
            lambda: sign(aud=["client-1", "untrusted"], azp="client-1"),
            id="extra audience with our azp",
        ),
        pytest.param(lambda: sign(azp="someone-else"), id="foreign azp"),
        pytest.param(lambda: "not.a.jwt", id="garbage"),
    ],
)
def test_a_bad_id_token_is_refused(token):
    with pytest.raises(ProviderError) as caught:
        verify(token())
    assert caught.value.error == "invalid_id_token"


# --- id_tokens MACed with the client secret (OIDC Core §10.1) ------------------------------

SECRET = "a-client-secret-of-the-app"


def mac(algorithm="HS256", secret=SECRET, **overrides):
    from joserfc.errors import SecurityWarning
    from joserfc.jwk import OctKey

    now = int(time.time())
    claims = {"iss": ISSUER, "aud": "client-1", "sub": "alice", "iat": now, "exp": now + 300}
    claims |= {"nonce": "n-1", **overrides}
    with warnings.catch_warnings():  # the short-secret case signs with a short key
        warnings.simplefilter("ignore", SecurityWarning)
        key = OctKey.import_key(secret.encode())
    return jwt.encode({"alg": algorithm}, claims, key, algorithms=[algorithm])


def verify_with_secret(token, secret=SECRET):
    async def run():
        async with httpx.AsyncClient() as http:
            keys = FixedKeys(http)
            claims = await verify_id_token(
                token,
                issuer=ISSUER,
                client_id="client-1",
                nonce="n-1",
                jwks=keys,
                client_secret=secret,
            )
            return claims, keys.fetches

    return asyncio.run(run())


@pytest.mark.parametrize("algorithm", ["HS256", "HS384", "HS512"])
def test_an_id_token_maced_with_the_client_secret_verifies(algorithm):
    claims, fetches = verify_with_secret(mac(algorithm))
    assert claims["sub"] == "alice"
    assert fetches == 0  # the issuer's keys are not needed


def test_a_short_client_secret_still_verifies_without_a_warning():
    with_short = mac(secret="short")
    assert verify_with_secret(with_short, secret="short")[0]["sub"] == "alice"


@pytest.mark.parametrize(
    ("token", "secret"),
    [
        pytest.param(mac(secret="another-secret-entirely"), SECRET, id="other-secret"),
        pytest.param(mac(), None, id="no-secret"),
        pytest.param(mac(aud="client-2"), SECRET, id="wrong-audience"),
        pytest.param(mac(nonce="n-2"), SECRET, id="wrong-nonce"),
    ],
)
def test_a_maced_id_token_that_does_not_verify_is_refused(token, secret):
    with pytest.raises(ProviderError) as caught:
        verify_with_secret(token, secret=secret)
    assert caught.value.error == "invalid_id_token"
    assert SECRET not in str(caught.value)


def test_a_public_key_is_never_used_as_a_mac_key():
    """alg confusion: an HS256 token MACed with the issuer's public key is refused."""
    import base64
    import hashlib
    import hmac
    import json

    def part(value):
        raw = value if isinstance(value, bytes) else json.dumps(value).encode()
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    now = int(time.time())
    claims = {"iss": ISSUER, "aud": "client-1", "sub": "mallory", "exp": now + 300, "nonce": "n-1"}
    signing_input = f"{part({'alg': 'HS256', 'kid': 'k1'})}.{part(claims)}"
    public = SIGNING.as_pem(private=False)
    tag = hmac.new(public, signing_input.encode(), hashlib.sha256).digest()
    forged = f"{signing_input}.{part(tag)}"
    for secret in (SECRET, None):
        with pytest.raises(ProviderError) as caught:
            verify_with_secret(forged, secret=secret)
        assert caught.value.error == "invalid_id_token"


def test_the_invalid_id_token_page_does_not_ask_to_try_again():
    from oauthvault.service.outcomes import OUTCOMES

    _, message, advice = OUTCOMES["invalid_id_token"].words("Local", "Acme")
    assert "try again" not in f"{message} {advice}".lower().replace("trying again will not", "")


# --- the jwks_uri follows the rule of every discovered endpoint (issue 26, 9) -------------


@pytest.mark.parametrize(
    "jwks_uri",
    [
        "http://10.0.0.7/internal/jwks",
        "http://metadata.internal/jwks",
        "ftp://127.0.0.1/jwks",
        "http://user:pw@127.0.0.1/jwks",
    ],
)
def test_a_jwks_uri_breaking_the_endpoint_rule_is_refused_without_a_request(jwks_uri):
    """A loopback http issuer may only point at loopback http keys; anything else (an
    https issuer's http URL too) is refused before any request is made to it."""
    from tests.helpers.metadata_server import OPENID, MetadataServer

    with MetadataServer() as server:
        server.route(OPENID, {"issuer": server.url, "jwks_uri": jwks_uri})
        seen = []

        async def run():
            async with httpx.AsyncClient(event_hooks={"request": [seen_request]}) as http:
                return await JWKSCache(http).keys(server.url)

        async def seen_request(request):
            seen.append(str(request.url))

        with pytest.raises(ProviderError) as caught:
            asyncio.run(run())
    assert caught.value.error == "invalid_discovery_document"
    assert seen == [f"{server.url}{OPENID}"]  # the discovery document only


def test_a_loopback_jwks_uri_of_a_loopback_issuer_is_fetched():
    from tests.helpers.metadata_server import OPENID, MetadataServer

    with MetadataServer() as server:
        server.route(OPENID, {"issuer": server.url, "jwks_uri": f"{server.url}/jwks"})
        server.route("/jwks", KeySet([SIGNING]).as_dict(private=False))

        async def run():
            async with httpx.AsyncClient() as http:
                return await JWKSCache(http).keys(server.url)

        keys = asyncio.run(run())
    assert keys.get_by_kid("k1")


def test_an_https_issuer_may_not_name_an_http_jwks_uri():
    from oauthvault.oauth.idtoken import _jwks_uri

    with pytest.raises(ProviderError) as caught:
        _jwks_uri(ISSUER, {"jwks_uri": "http://127.0.0.1:8080/jwks"})
    assert caught.value.error == "invalid_discovery_document"
    assert _jwks_uri(ISSUER, {"jwks_uri": f"{ISSUER}/jwks"}) == f"{ISSUER}/jwks"
