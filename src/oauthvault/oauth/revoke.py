"""Revoking a grant at the provider (RFC 7009), sync and async, through Authlib.

The refresh token is revoked when there is one (that ends the whole grant at most
providers), else the access token. The answer is reported honestly: ``True`` only when the
provider said 200, ``False`` when it refused or could not be reached, ``None`` when it has
no standard revocation endpoint.
"""

from __future__ import annotations

import logging
from typing import Any

from authlib.integrations.httpx_client import AsyncOAuth2Client, OAuth2Client

from oauthvault.models import TokenSet
from oauthvault.oauth.client_auth import client_secret_for
from oauthvault.providers.config import ProviderConfig

__all__ = ["revoke_grant", "revoke_grant_async"]

logger = logging.getLogger("oauthvault.providers")


def _request(config: ProviderConfig, tokens: TokenSet) -> tuple[str, str, str] | None:
    spec = config.spec
    if spec is None or spec.revocation_endpoint is None or spec.revocation_method != "rfc7009":
        return None
    if tokens.refresh_token:
        return spec.revocation_endpoint, tokens.refresh_token, "refresh_token"
    return spec.revocation_endpoint, tokens.access_token, "access_token"


def _client_options(config: ProviderConfig, timeout: float) -> dict[str, Any]:
    assert config.spec is not None  # noqa: S101 - _request checked it
    return {
        "client_id": config.client_id,
        "client_secret": client_secret_for(config, config.spec),
        "token_endpoint_auth_method": config.spec.token_endpoint_auth_method,
        "timeout": timeout,
    }


def _confirmed(config: ProviderConfig, status: int) -> bool:
    if status != 200:
        logger.warning("%s refused revocation: HTTP %s", config.name, status)
    return status == 200


def revoke_grant(config: ProviderConfig, tokens: TokenSet, *, timeout: float = 10.0) -> bool | None:
    """Ask the provider to revoke; see the module docstring for the answer."""
    request = _request(config, tokens)
    if request is None:
        return None
    url, token, hint = request
    with OAuth2Client(**_client_options(config, timeout)) as client:
        try:
            response = client.revoke_token(url, token=token, token_type_hint=hint)
        except Exception as error:  # transport failures: reported, never raised with the token
            logger.warning("revocation at %s failed: %s", config.name, type(error).__name__)
            return False
    return _confirmed(config, response.status_code)


async def revoke_grant_async(
    config: ProviderConfig, tokens: TokenSet, *, timeout: float = 10.0
) -> bool | None:
    """The asyncio twin of :func:`revoke_grant`."""
    request = _request(config, tokens)
    if request is None:
        return None
    url, token, hint = request
    async with AsyncOAuth2Client(**_client_options(config, timeout)) as client:
        try:
            response = await client.revoke_token(url, token=token, token_type_hint=hint)
        except Exception as error:  # transport failures: reported, never raised with the token
            logger.warning("revocation at %s failed: %s", config.name, type(error).__name__)
            return False
    return _confirmed(config, response.status_code)
