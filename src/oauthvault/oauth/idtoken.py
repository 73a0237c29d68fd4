"""Verifying an OpenID Connect id_token: signature by the issuer's JWKS, iss, aud, nonce, exp."""

from __future__ import annotations

import time
from typing import Any

import httpx
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from oauthvault.errors import ProviderError
from oauthvault.providers.discovery import discovery_url

__all__ = ["JWKSCache", "verify_id_token"]

_JWKS_TTL = 3600.0


class JWKSCache:
    """The signing keys of each issuer, fetched through discovery and kept an hour."""

    def __init__(self, http: httpx.AsyncClient) -> None:
        self._http = http
        self._keys: dict[str, tuple[float, KeySet]] = {}

    async def keys(self, issuer: str, *, refresh: bool = False) -> KeySet:
        cached = self._keys.get(issuer)
        if cached is not None and not refresh and cached[0] > time.monotonic():
            return cached[1]
        try:
            document = (await self._http.get(discovery_url(issuer))).raise_for_status().json()
            jwks = (await self._http.get(document["jwks_uri"])).raise_for_status().json()
            key_set = KeySet.import_key_set(jwks)
        except (httpx.HTTPError, KeyError, TypeError, ValueError, JoseError) as error:
            raise ProviderError(
                "temporarily_unavailable", f"cannot fetch the signing keys: {type(error).__name__}"
            ) from None
        self._keys[issuer] = (time.monotonic() + _JWKS_TTL, key_set)
        return key_set


async def verify_id_token(
    id_token: str, *, issuer: str, client_id: str, nonce: str | None, jwks: JWKSCache
) -> dict[str, Any]:
    """The claims of a valid id_token.

    Raises:
        ProviderError: ``invalid_id_token`` for a bad signature, issuer, audience, nonce or
            lifetime (one key-set refresh is tried first, for a rotated signing key).
    """
    for refresh in (False, True):
        try:
            token = jwt.decode(id_token, await jwks.keys(issuer, refresh=refresh))
            break
        except JoseError:
            if refresh:
                raise ProviderError("invalid_id_token", "signature does not verify") from None
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
    return claims
