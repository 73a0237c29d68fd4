"""One refresh grant (RFC 6749 §6), sync and async, as a :class:`GrantResult`.

The request and the reading of its answer are :func:`oauthvault.oauth.token_request.exchange`,
shaped by the provider's catalog entry and filled with the connection's parameters; the two
functions here only drive it, with a blocking or an asyncio httpx client.
"""

from __future__ import annotations

from collections.abc import Mapping

import httpx

from oauthvault.errors import ConfigError
from oauthvault.oauth.client_auth import client_secret_for
from oauthvault.oauth.token_request import (
    Exchange,
    GrantResult,
    classify_failure,
    exchange,
    run_async,
    run_sync,
)
from oauthvault.providers.config import ProviderConfig

__all__ = ["GrantResult", "classify_failure", "refresh_grant", "refresh_grant_async"]


def _refresh(config: ProviderConfig, refresh_token: str, params: Mapping[str, str]) -> Exchange:
    try:
        spec = config.spec_for(params)
        secret = client_secret_for(config, spec)
    except ConfigError as error:
        return GrantResult("config", error="invalid_configuration", description=str(error))
    return (
        yield from exchange(
            spec,
            client_id=config.client_id,
            client_secret=secret,
            grant="refresh_token",
            fields={"refresh_token": refresh_token},
            rotating=spec.refresh_tokens == "rotating",
        )
    )


def refresh_grant(
    config: ProviderConfig,
    refresh_token: str,
    *,
    timeout: float,
    params: Mapping[str, str] | None = None,
) -> GrantResult:
    """One ``grant_type=refresh_token`` request for a connection with ``params``."""
    with httpx.Client(timeout=timeout) as http:
        result: GrantResult = run_sync(_refresh(config, refresh_token, params or {}), http)
    return result


async def refresh_grant_async(
    config: ProviderConfig,
    refresh_token: str,
    *,
    timeout: float,
    params: Mapping[str, str] | None = None,
) -> GrantResult:
    """The asyncio twin of :func:`refresh_grant`."""
    async with httpx.AsyncClient(timeout=timeout) as http:
        result: GrantResult = await run_async(_refresh(config, refresh_token, params or {}), http)
    return result
