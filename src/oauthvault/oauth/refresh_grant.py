"""One refresh grant (RFC 6749 §6), sync and async, as a :class:`GrantResult`.

The request and the reading of its answer are :func:`oauthvault.oauth.token_request.exchange`,
shaped by the provider's catalog entry and filled with the connection's parameters; the two
functions here only drive it, with a blocking or an asyncio httpx client.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from typing import Any

import httpx

from oauthvault.errors import ConfigError
from oauthvault.models import ClientCredentials
from oauthvault.oauth.client_auth import client_secret_for
from oauthvault.oauth.token_request import (
    Exchange,
    GrantResult,
    classify_failure,
    exchange,
    is_client_refusal,
    run_async,
    run_sync,
)
from oauthvault.providers.config import ProviderConfig
from oauthvault.providers.params import pick
from oauthvault.providers.spec import ProviderSpec

__all__ = [
    "GrantResult",
    "classify_failure",
    "refresh_grant",
    "refresh_grant_async",
    "secondary_refresh_token",
    "with_secondary",
]

logger = logging.getLogger("oauthvault.refresh")


def _refresh(
    config: ProviderConfig,
    refresh_token: str,
    params: Mapping[str, str],
    kept: Mapping[str, Any] | None,
    credentials: ClientCredentials | None = None,
    scope: str | None = None,
    window: float | None = None,
) -> Exchange:
    try:
        spec = config.spec_for(params)
        secret = client_secret_for(config, spec)
    except ConfigError as error:
        return GrantResult("config", error="invalid_configuration", description=str(error))
    if credentials is not None:
        return (yield from _client_credentials(config, spec, secret, credentials, scope))

    def grant(token: str) -> Exchange:
        return exchange(
            spec,
            client_id=config.client_id,
            client_secret=secret,
            grant="refresh_token",
            fields={"refresh_token": token},
            rotating=spec.refresh_tokens == "rotating",
            answer_window=window,
        )

    result = yield from grant(refresh_token)
    if result.outcome == "ok" and result.token is not None and _nested_main(spec, kept):
        # The connection's own tokens live at token_path (a Slack user-token-only install):
        # keep the new ones there, so the kept answer keeps its shape.
        assert spec.token_path is not None  # noqa: S101 - _nested_main checked it
        nested = with_secondary(result, spec.token_path, kept or {}, result.token)
        response = dict(nested.response or {})
        for name in ("access_token", "refresh_token", "expires_in", "token_type", "scope"):
            response.pop(name, None)
        return dataclasses.replace(nested, response=response)
    second = secondary_refresh_token(spec, kept)
    if result.outcome != "ok" or second is None or spec.secondary_token_path is None:
        return result
    # The second token set (Slack's user token next to the bot token) has its own rotating
    # refresh token: refresh it too, keep its new tokens in the answer; a failure there is
    # logged and leaves the main refresh intact.
    other = yield from grant(second)
    if other.outcome != "ok" or other.token is None:
        logger.warning("%s: refreshing the second token set failed (%s)", spec.name, other.error)
        return result
    return with_secondary(result, spec.secondary_token_path, kept or {}, other.token)


def _client_credentials(
    config: ProviderConfig,
    spec: ProviderSpec,
    app_secret: str | None,
    credentials: ClientCredentials,
    scope: str | None,
) -> Exchange:
    """A new token by the ``client_credentials`` grant (RFC 6749 §4.4), with a customer's
    own client or the app's. Refused credentials mean the connection needs new ones."""
    own = credentials.client_id is not None
    result = yield from exchange(
        spec,
        client_id=credentials.client_id if own else config.client_id,  # type: ignore[arg-type]
        client_secret=credentials.client_secret if own else app_secret,
        grant="client_credentials",
        fields={"scope": scope or ""},
    )
    if own and is_client_refusal(result):  # the customer's client: they must fix it
        return dataclasses.replace(result, outcome="reauth")
    return result


def _nested_main(spec: ProviderSpec, kept: Mapping[str, Any] | None) -> bool:
    """Whether the kept answer holds the main tokens at ``token_path`` (none at the top)."""
    if spec.token_path is None or kept is None or kept.get("access_token"):
        return False
    return isinstance(pick(kept, f"{spec.token_path}.access_token"), str)


def secondary_refresh_token(spec: ProviderSpec, kept: Mapping[str, Any] | None) -> str | None:
    """The refresh token of the second token set kept at ``secondary_token_path``, when the
    main tokens are at the top level (a bot + user install), else ``None`` (pure)."""
    path = spec.secondary_token_path
    if path is None or kept is None or not kept.get("access_token"):
        return None
    token = pick(kept, f"{path}.refresh_token")
    return token if isinstance(token, str) and token else None


def with_secondary(
    result: GrantResult, path: str, kept: Mapping[str, Any], tokens: Mapping[str, Any]
) -> GrantResult:
    """``result`` whose kept answer carries the second set's new tokens at ``path`` (pure)."""
    response = dict(result.response or {})
    previous = pick(kept, path)
    nested = dict(previous) if isinstance(previous, Mapping) else {}
    nested.update({k: v for k, v in tokens.items() if v is not None and k != "id_token"})
    response[path] = nested
    return dataclasses.replace(result, response=response)


def refresh_grant(
    config: ProviderConfig,
    refresh_token: str,
    *,
    timeout: float,
    params: Mapping[str, str] | None = None,
    kept: Mapping[str, Any] | None = None,
    credentials: ClientCredentials | None = None,
    scope: str | None = None,
    window: float | None = None,
) -> GrantResult:
    """One ``grant_type=refresh_token`` request for a connection with ``params`` (and a
    second one when the ``kept`` answer holds a second token set); a
    ``grant_type=client_credentials`` request instead when ``credentials`` are given.
    ``timeout`` bounds each request; once sent, a refresh that may rotate the refresh
    token waits ``window`` seconds for its answer (when longer)."""
    flow = _refresh(config, refresh_token, params or {}, kept, credentials, scope, window)
    with httpx.Client(timeout=timeout) as http:
        result: GrantResult = run_sync(flow, http)
    return result


async def refresh_grant_async(
    config: ProviderConfig,
    refresh_token: str,
    *,
    timeout: float,
    params: Mapping[str, str] | None = None,
    kept: Mapping[str, Any] | None = None,
    credentials: ClientCredentials | None = None,
    scope: str | None = None,
    window: float | None = None,
) -> GrantResult:
    """The asyncio twin of :func:`refresh_grant`."""
    flow = _refresh(config, refresh_token, params or {}, kept, credentials, scope, window)
    async with httpx.AsyncClient(timeout=timeout) as http:
        result: GrantResult = await run_async(flow, http)
    return result
