"""The authorization-code flow: build the provider URL, then finish at the callback.

``AsyncConnector.start`` makes the state (with PKCE verifier and OIDC nonce) and returns the
provider's authorization URL; ``AsyncConnector.finish`` checks state, browser binding and
``iss``, redeems the code with Authlib, verifies any id_token and stores the tokens
encrypted. Protocol work is Authlib's; this module decides what is allowed.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import httpx
from authlib.integrations.base_client.errors import OAuthError
from authlib.integrations.httpx_client import AsyncOAuth2Client

from oauthvault.errors import ConfigError, ProviderError, UnknownProvider
from oauthvault.models import TokenKey
from oauthvault.oauth.client_auth import client_secret_for
from oauthvault.oauth.idtoken import JWKSCache, verify_id_token
from oauthvault.oauth.pkce import PKCEPair
from oauthvault.oauth.state import DEFAULT_STATE_TTL, AsyncOAuthStateManager, AuthorizationState
from oauthvault.providers.catalog import ProviderSpec
from oauthvault.providers.config import ProviderConfig
from oauthvault.providers.discovery import discover_async

if TYPE_CHECKING:
    from oauthvault.vault import AsyncOAuthTokenCache

__all__ = ["AsyncConnector"]

_TIMEOUT = httpx.Timeout(10.0)
logger = logging.getLogger("oauthvault.providers")


class AsyncConnector:
    """Runs connect flows for the configured providers, storing tokens in ``vault``."""

    def __init__(
        self,
        vault: AsyncOAuthTokenCache,
        providers: Mapping[str, ProviderConfig],
        *,
        http: httpx.AsyncClient | None = None,
        state_ttl: int = DEFAULT_STATE_TTL,
    ) -> None:
        self._vault = vault
        self._configs = dict(providers)
        self._http = http or httpx.AsyncClient(timeout=_TIMEOUT)
        self._states = AsyncOAuthStateManager(vault, ttl=state_ttl)
        self._jwks = JWKSCache(self._http)

    @property
    def provider_names(self) -> list[str]:
        return sorted(self._configs)

    async def provider(self, name: str) -> ProviderConfig:
        """The provider's configuration, discovering an issuer-only provider on first use.

        Raises:
            UnknownProvider: ``name`` is not configured.
            ProviderError: discovery failed.
        """
        config = self._configs.get(name)
        if config is None:
            raise UnknownProvider(name)
        if config.spec is None:
            if config.issuer is None:  # pragma: no cover - the config loader forbids it
                raise ConfigError(f"providers.{name}", "needs an issuer or endpoints")
            config = config.resolved(await discover_async(config.issuer, self._http, name=name))
            self._configs[name] = config
        return config

    async def start(
        self,
        provider: str,
        workspace_id: str,
        actor_id: str,
        *,
        redirect_uri: str,
        binding: str,
        return_url: str | None = None,
    ) -> str:
        """The URL to send the user's browser to, for a new authorization request."""
        TokenKey(provider, workspace_id, actor_id)  # ids are checked before anything is kept
        config = await self.provider(provider)
        spec = _spec(config)
        scopes = config.requested_scopes
        pkce = PKCEPair.generate() if spec.pkce else None
        nonce = secrets.token_urlsafe(16) if spec.issuer and "openid" in scopes else None
        state = await self._states.create_state(
            provider,
            workspace_id,
            actor_id,
            redirect_uri,
            binding=binding,
            return_url=return_url,
            code_verifier=pkce.verifier if pkce else None,
            nonce=nonce,
        )
        client = AsyncOAuth2Client(
            config.client_id,
            scope=spec.scope_separator.join(scopes) if scopes else None,
            redirect_uri=redirect_uri,
            code_challenge_method="S256" if pkce else None,
        )
        extra = dict(config.authorize_params)
        if nonce is not None:
            extra["nonce"] = nonce
        url, _ = client.create_authorization_url(
            spec.authorization_endpoint,
            state=state,
            code_verifier=pkce.verifier if pkce else None,
            **extra,
        )
        await client.aclose()
        return str(url)

    async def take_state(
        self, provider: str, params: Mapping[str, str], *, binding: str | None
    ) -> AuthorizationState:
        """Consume the callback's state (whatever else the callback says).

        Raises:
            InvalidState: see :meth:`AsyncOAuthStateManager.consume_state`.
        """
        return await self._states.consume_state(
            params.get("state"), provider=provider, binding=binding
        )

    async def finish(
        self, request: AuthorizationState, params: Mapping[str, str]
    ) -> Mapping[str, Any]:
        """Redeem the callback's code for ``request`` and store the tokens; returns the
        verified id_token claims (empty when the provider sent no id_token).

        Raises:
            ProviderError: the provider sent an error (``.error``, e.g. ``access_denied``),
                a wrong ``iss``, no code, or refused the code.
        """
        config = await self.provider(request.provider)
        spec = _spec(config)
        if "error" in params:
            raise ProviderError(params["error"][:100], params.get("error_description"))
        issuer = params.get("iss")
        if issuer is not None and spec.issuer is not None and issuer != spec.issuer:
            raise ProviderError("invalid_issuer", "the callback came from another issuer")
        code = params.get("code")
        if not code:
            raise ProviderError("invalid_request", "the callback carries no code")
        token = await self._redeem(config, spec, request, code)
        claims: dict[str, Any] = {}
        id_token = token.get("id_token")
        if isinstance(id_token, str) and spec.issuer is not None:
            claims = await verify_id_token(
                id_token,
                issuer=spec.issuer,
                client_id=config.client_id,
                nonce=request.nonce,
                jwks=self._jwks,
            )
        access_token = token.get("access_token")
        if not isinstance(access_token, str) or not access_token:
            raise ProviderError("invalid_token_response", "no access_token in the answer")
        refresh_token = token.get("refresh_token")
        expires_in = _seconds(token.get("expires_in"))
        scope = token.get("scope")
        scope = scope if isinstance(scope, str) else None
        await self._vault.store_tokens(
            request.provider,
            request.workspace_id,
            request.actor_id,
            access_token,
            refresh_token if isinstance(refresh_token, str) and refresh_token else None,
            expires_in,
            scope,
        )
        return claims

    async def _redeem(
        self, config: ProviderConfig, spec: ProviderSpec, request: AuthorizationState, code: str
    ) -> dict[str, Any]:
        secret = client_secret_for(config, spec)
        method = spec.token_endpoint_auth_method
        async with AsyncOAuth2Client(
            config.client_id,
            secret,
            token_endpoint_auth_method=method,
            redirect_uri=request.redirect_uri,
            timeout=10.0,
        ) as client:
            try:
                token = await client.fetch_token(
                    spec.token_endpoint,
                    grant_type="authorization_code",
                    code=code,
                    code_verifier=request.code_verifier,
                )
            except OAuthError as error:
                raise ProviderError(
                    str(error.error or "invalid_grant")[:100],
                    (error.description or "")[:300] or None,
                ) from None
            except Exception as error:  # transport and malformed answers: name only the kind
                raise ProviderError(
                    "temporarily_unavailable", f"token request failed: {type(error).__name__}"
                ) from None
        return dict(token)

    async def aclose(self) -> None:
        await self._http.aclose()


def _spec(config: ProviderConfig) -> ProviderSpec:
    if config.spec is None:  # pragma: no cover - provider() resolves it first
        raise ConfigError(f"providers.{config.name}", "has not been discovered")
    return config.spec


def _seconds(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return max(value, 0)
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return None
