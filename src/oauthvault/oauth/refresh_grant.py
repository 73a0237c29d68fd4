"""One refresh grant (RFC 6749 §6) with Authlib, sync and async, as a :class:`GrantResult`.

:func:`classify_failure` (pure) says what a failed answer means; the two request functions
are thin I/O that differ only by ``await``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import httpx2
from authlib.integrations.base_client.errors import OAuthError
from authlib.integrations.httpx_client import AsyncOAuth2Client, OAuth2Client

from oauthvault.errors import ConfigError
from oauthvault.oauth.client_auth import client_secret_for
from oauthvault.providers.config import ProviderConfig

__all__ = ["GrantResult", "classify_failure", "refresh_grant", "refresh_grant_async"]

# RFC 6749 §5.2 answers after which retrying cannot help: the grant is gone.
_REAUTH_ERRORS = frozenset({"invalid_grant", "unauthorized_client", "invalid_scope"})
# Our own configuration is wrong: not the user's doing, and not transient either.
_CONFIG_ERRORS = frozenset({"invalid_client", "invalid_request", "unsupported_grant_type"})


@dataclass(frozen=True, slots=True)
class GrantResult:
    """What one refresh grant came to. ``token`` holds the provider's answer when ok."""

    outcome: Literal["ok", "reauth", "config", "transient"]
    token: Mapping[str, Any] | None = field(default=None, repr=False)
    error: str | None = None
    description: str | None = None
    # False when the request may have reached the provider (a rotated refresh token
    # could then already be retired): retrying with the old one would kill the grant.
    retry_safe: bool = True


def classify_failure(
    status_code: int | None, error: str | None, description: str | None, *, retry_safe: bool
) -> GrantResult:
    """Map a failed token request to an outcome (pure)."""
    if error in _REAUTH_ERRORS:
        return GrantResult("reauth", error=error, description=description)
    if error in _CONFIG_ERRORS:
        return GrantResult("config", error=error, description=description)
    if status_code is not None and 400 <= status_code < 500 and status_code != 429:
        if error is not None:
            return GrantResult("config", error=error, description=description)
    return GrantResult(
        "transient",
        error=error or (f"http_{status_code}" if status_code else "unreachable"),
        description=description,
        retry_safe=retry_safe,
    )


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
