"""Verifying an OpenID Connect id_token: the signature, iss, aud, azp, nonce and exp.

An id_token signed with an asymmetric key is checked against the issuer's JWKS. One whose
header says ``HS256``, ``HS384`` or ``HS512`` is checked with the client secret, whose UTF-8
octets are the MAC key (OpenID Connect Core 1.0 §10.1); without a client secret it is
refused. The header's ``alg`` only picks which of the two key sources is used: each
accepts only its own family of algorithms, so a public key can never act as a MAC key.

The audience follows OpenID Connect Core 1.0 §3.1.3.7: ``aud`` must contain our client_id
and no audience the vault does not trust (it trusts none but itself), and an ``azp``, when
present, must be our client_id.
"""

from __future__ import annotations

import time
import warnings
from typing import Any
from urllib.parse import urlsplit

import httpx
from joserfc import jws, jwt
from joserfc.errors import JoseError, SecurityWarning
from joserfc.jwk import KeySet, OctKey

from oauthvault.errors import ConfigError, ProviderError
from oauthvault.providers.discovery import discovery_url
from oauthvault.providers.tables import check_url

__all__ = ["JWKSCache", "verify_id_token"]

_JWKS_TTL = 3600.0
#: Signed with the client secret (OIDC Core §10.1).
_MAC_ALGORITHMS = ("HS256", "HS384", "HS512")
#: Signed with one of the issuer's published keys.
_KEY_ALGORITHMS = tuple(
    "RS256 RS384 RS512 PS256 PS384 PS512 ES256 ES384 ES512 EdDSA Ed25519".split()
)


class JWKSCache:
    """The signing keys of each issuer, fetched through discovery and kept an hour.

    The ``jwks_uri`` must pass the rule every discovered endpoint does: https, or http on
    a loopback host for a loopback http issuer; else nothing is fetched from it
    (``invalid_discovery_document``), so a remote issuer cannot make the vault GET a
    plain-http internal URL.
    """

    def __init__(self, http: httpx.AsyncClient) -> None:
        self._http = http
        self._keys: dict[str, tuple[float, KeySet]] = {}

    async def keys(self, issuer: str, *, refresh: bool = False) -> KeySet:
        cached = self._keys.get(issuer)
        if cached is not None and not refresh and cached[0] > time.monotonic():
            return cached[1]
        try:
            document = (await self._http.get(discovery_url(issuer))).raise_for_status().json()
            jwks = (await self._http.get(_jwks_uri(issuer, document))).raise_for_status().json()
            key_set = KeySet.import_key_set(jwks)
        except (httpx.HTTPError, KeyError, TypeError, ValueError, JoseError) as error:
            raise ProviderError(
                "temporarily_unavailable", f"cannot fetch the signing keys: {type(error).__name__}"
            ) from None
        self._keys[issuer] = (time.monotonic() + _JWKS_TTL, key_set)
        return key_set


def _jwks_uri(issuer: str, document: object) -> str:
    """The document's ``jwks_uri``, checked as discovery checks every endpoint."""
    uri = document["jwks_uri"] if isinstance(document, dict) else None
    if not isinstance(uri, str):
        raise TypeError("jwks_uri")
    try:
        return check_url(
            "discovery.jwks_uri", uri, allow_loopback_http=urlsplit(issuer).scheme == "http"
        )
    except ConfigError as error:
        raise ProviderError(
            "invalid_discovery_document", f"{error.setting}: {error.problem}"
        ) from None


async def verify_id_token(
    id_token: str,
    *,
    issuer: str,
    client_id: str,
    nonce: str | None,
    jwks: JWKSCache,
    client_secret: str | None = None,
) -> dict[str, Any]:
    """The claims of a valid id_token.

    Raises:
        ProviderError: ``invalid_id_token`` for a bad signature, issuer, audience (an
            untrusted extra one included), ``azp``, nonce or lifetime (one key-set refresh
            is tried first, for a rotated signing key), or an ``HS*`` token when there is
            no ``client_secret``; ``temporarily_unavailable`` when the issuer's keys cannot
            be fetched; ``invalid_discovery_document`` when its ``jwks_uri`` is not https
            (or loopback http for a loopback http issuer).
    """
    algorithm = _algorithm(id_token)
    if algorithm in _MAC_ALGORITHMS:
        token = _verify_mac(id_token, algorithm, client_secret)
    else:
        token = await _verify_signature(id_token, issuer, jwks)
    claims: dict[str, Any] = dict(token.claims)
    registry = jwt.JWTClaimsRegistry(
        iss={"essential": True, "value": issuer},
        aud={"essential": True, "value": client_id},
        exp={"essential": True},
        nonce={"essential": nonce is not None, "value": nonce} if nonce else {"essential": False},
    )
    try:
        registry.validate(claims)
    except JoseError as error:
        raise ProviderError("invalid_id_token", f"{type(error).__name__}") from None
    _check_audience(claims, client_id)
    return claims


def _check_audience(claims: dict[str, Any], client_id: str) -> None:
    """Refuse an audience besides ``client_id`` (none is trusted) and a foreign ``azp``."""
    audience = claims.get("aud")
    audiences = [audience] if isinstance(audience, str) else list(audience or ())
    if any(other != client_id for other in audiences):
        raise ProviderError("invalid_id_token", "the id_token has an untrusted audience")
    if "azp" in claims and claims["azp"] != client_id:
        raise ProviderError("invalid_id_token", "the id_token was issued to another party")


def _algorithm(id_token: str) -> str | None:
    """The ``alg`` of the token's protected header (not yet trusted), if it reads."""
    try:
        header = jws.extract_compact(id_token.encode("ascii")).protected
    except (JoseError, UnicodeEncodeError, ValueError):
        return None
    algorithm = header.get("alg")
    return algorithm if isinstance(algorithm, str) else None


def _verify_mac(id_token: str, algorithm: str, client_secret: str | None) -> jwt.Token:
    if not client_secret:
        raise ProviderError("invalid_id_token", f"{algorithm} needs the client secret")
    try:
        with warnings.catch_warnings():
            # A short secret is the provider's to choose; it is still the only key there is.
            warnings.simplefilter("ignore", SecurityWarning)
            key = OctKey.import_key(client_secret.encode("utf-8"))
        return jwt.decode(id_token, key, algorithms=[algorithm])
    except (JoseError, ValueError):
        raise ProviderError("invalid_id_token", "signature does not verify") from None


async def _verify_signature(id_token: str, issuer: str, jwks: JWKSCache) -> jwt.Token:
    for refresh in (False, True):
        try:
            return jwt.decode(
                id_token, await jwks.keys(issuer, refresh=refresh), algorithms=_KEY_ALGORITHMS
            )
        except (JoseError, ValueError):
            if refresh:
                raise ProviderError("invalid_id_token", "signature does not verify") from None
    raise AssertionError("unreachable")  # pragma: no cover
