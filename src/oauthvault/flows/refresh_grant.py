"""Performing one refresh grant with Authlib, sync and async, as a :class:`GrantResult`.

Thin I/O: the two functions differ only by ``await``; classification is in
:func:`oauthvault.flows.refresh.classify_failure`.
"""

from __future__ import annotations

from typing import Any

import httpx2
from authlib.integrations.base_client.errors import OAuthError
from authlib.integrations.httpx_client import AsyncOAuth2Client, OAuth2Client

from oauthvault.errors import ConfigError
from oauthvault.flows.client_auth import client_secret_for
from oauthvault.flows.provider_config import ProviderConfig
from oauthvault.flows.refresh import GrantResult, classify_failure

__all__ = ["refresh_grant", "refresh_grant_async"]


def _client_options(config: ProviderConfig, timeout: float) -> dict[str, Any]:
    spec = config.spec
    if spec is None:  # pragma: no cover - the vault resolves discovery first
        raise ConfigError(f"providers.{config.name}", "has not been discovered")
    return {
        "client_id": config.client_id,
        "client_secret": client_secret_for(config, spec),
        "token_endpoint_auth_method": spec.token_endpoint_auth_method,
        "timeout": timeout,
    }


def _failure(error: Exception, status: int | None, rotating: bool) -> GrantResult:
    if isinstance(error, OAuthError):
        return classify_failure(status, error.error, error.description, retry_safe=True)
    if isinstance(error, (httpx2.ConnectError, httpx2.ConnectTimeout, httpx2.PoolTimeout)):
        # Never reached the provider: retrying cannot retire anything.
        return classify_failure(None, None, type(error).__name__, retry_safe=True)
    if isinstance(error, httpx2.TransportError):
        # Sent, with no answer: a rotating provider may already have retired the old token.
        return classify_failure(None, "no_answer", type(error).__name__, retry_safe=not rotating)
    # An answer that is not an OAuth response (an HTML 502 page, say).
    return classify_failure(status, None, type(error).__name__, retry_safe=True)


def refresh_grant(config: ProviderConfig, refresh_token: str, *, timeout: float) -> GrantResult:
    """One ``grant_type=refresh_token`` request to ``config``'s token endpoint."""
    assert config.spec is not None  # noqa: S101 - checked in _client_options
    status: dict[str, int] = {}
    client = OAuth2Client(**_client_options(config, timeout))

    def remember_status(response: Any) -> Any:
        status["code"] = response.status_code
        return response

    client.register_compliance_hook("refresh_token_response", remember_status)
    try:
        token = client.refresh_token(config.spec.token_endpoint, refresh_token=refresh_token)
    except Exception as error:  # classified, never re-raised with request details
        return _failure(error, status.get("code"), config.spec.refresh_tokens == "rotating")
    finally:
        client.close()
    return GrantResult("ok", token=dict(token))


async def refresh_grant_async(
    config: ProviderConfig, refresh_token: str, *, timeout: float
) -> GrantResult:
    """The asyncio twin of :func:`refresh_grant`."""
    assert config.spec is not None  # noqa: S101 - checked in _client_options
    status: dict[str, int] = {}
    client = AsyncOAuth2Client(**_client_options(config, timeout))

    def remember_status(response: Any) -> Any:
        status["code"] = response.status_code
        return response

    client.register_compliance_hook("refresh_token_response", remember_status)
    try:
        token = await client.refresh_token(config.spec.token_endpoint, refresh_token=refresh_token)
    except Exception as error:  # classified, never re-raised with request details
        return _failure(error, status.get("code"), config.spec.refresh_tokens == "rotating")
    finally:
        await client.aclose()
    return GrantResult("ok", token=dict(token))
