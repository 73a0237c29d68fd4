"""The authorization-code flow: build the provider URL, then finish at the callback.

``AsyncConnector.start`` makes the state (with PKCE verifier and OIDC nonce) and returns the
provider's authorization URL; ``AsyncConnector.finish`` checks state, browser binding and
``iss``, redeems the code (:mod:`oauthvault.oauth.token_request`, shaped by the catalog),
verifies any id_token, reads the connection parameters from the callback, the token answer
and the provider's identity endpoint, and stores it all encrypted. The authorization URL is
Authlib's; this module decides what is allowed.
"""

from __future__ import annotations

import logging
import re
import secrets
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import httpx
from authlib.integrations.httpx_client import AsyncOAuth2Client

from oauthvault.connect.revocations import may_revoke, replaced_grant, revoke_quietly
from oauthvault.connect.state_async import AsyncOAuthStateManager
from oauthvault.errors import (
    ConfigError,
    InvalidInput,
    ProviderError,
    UnknownProvider,
    VaultError,
)
from oauthvault.models import TokenKey, TokenSet
from oauthvault.oauth.client_auth import client_secret_for
from oauthvault.oauth.idtoken import JWKSCache, verify_id_token
from oauthvault.oauth.pkce import PKCEPair
from oauthvault.oauth.state import DEFAULT_STATE_TTL, AuthorizationState
from oauthvault.oauth.token_request import GrantResult, exchange, run_async
from oauthvault.providers.catalog import load_catalog
from oauthvault.providers.config import ProviderConfig
from oauthvault.providers.discovery import discover_async
from oauthvault.providers.params import (
    ConnectionParam,
    check_given_params,
    missing_link_params,
    pick_params,
)
from oauthvault.providers.spec import ProviderSpec

if TYPE_CHECKING:
    from oauthvault.vault import AsyncOAuthTokenCache
    from oauthvault.vault.pending_records_async import AsyncPendingRecords

__all__ = ["AsyncConnector"]

_TIMEOUT = httpx.Timeout(10.0)
_HELD_KIND = "callback"
#: Seconds a callback POSTed by the provider (``form_post``) waits for the browser's GET.
HELD_CALLBACK_TTL = 60
#: The fields of a posted callback that are kept (RFC 6749 §4.1.2 and §4.1.2.1, RFC 9207),
#: each with its longest value; a provider's callback connection parameters are kept too,
#: up to :data:`_HELD_PARAM_LENGTH`. Any other field is dropped; a longer one is refused.
HELD_CALLBACK_FIELDS = {
    "code": 2048,
    "state": 128,
    "iss": 512,
    "error": 128,
    "error_description": 1024,
    "error_uri": 512,
}
_HELD_PARAM_LENGTH = 256
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

    def catalog_apps(self) -> dict[str, list[str]]:
        """The configured app names per catalog provider (integrations included)."""
        apps: dict[str, list[str]] = {}
        catalog = load_catalog()
        for name, config in sorted(self._configs.items()):
            entry = config.catalog_provider or name
            if entry in catalog:
                apps.setdefault(entry, []).append(name)
        return apps

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

    async def check_params(
        self, provider: str, params: Mapping[str, object], *, partial: bool = False
    ) -> dict[str, str]:
        """The connection parameters a new connection of ``provider`` starts with; with
        ``partial``, required ones may be missing (see :meth:`missing_params`).

        Raises:
            UnknownProvider: ``provider`` is not configured.
            InvalidInput: a value is unknown, missing or does not match its pattern.
        """
        config = await self.provider(provider)
        return check_given_params(
            _spec(config).connection_params, params, fixed=config.placeholders, partial=partial
        )

    async def missing_params(
        self, provider: str, params: Mapping[str, object]
    ) -> tuple[ConnectionParam, ...]:
        """The required connection parameters of ``provider`` that ``params`` lacks and
        nothing else supplies: the end user is asked for them before the flow starts.

        Raises:
            UnknownProvider: ``provider`` is not configured.
        """
        config = await self.provider(provider)
        return missing_link_params(
            _spec(config).connection_params, params, fixed=config.placeholders
        )

    def display_name(self, provider: str) -> str:
        """The provider's name as people know it (no discovery: the table's
        ``display_name``, else its name, for a provider not discovered yet)."""
        config = self._configs.get(provider)
        if config is None:
            return provider
        if config.spec is None:
            return config.overrides.display_name or provider
        return config.spec.display_name

    async def check_scopes(self, provider: str, scopes: Sequence[str] | None) -> tuple[str, ...]:
        """The scopes a new connection asks for: the app's, or ``scopes`` when given, which
        must be a non-empty subset of the app's.

        Raises:
            UnknownProvider: ``provider`` is not configured.
            InvalidInput: ``scopes`` is empty or asks for a scope the app does not.
        """
        allowed = (await self.provider(provider)).requested_scopes
        if scopes is None:
            return allowed
        if isinstance(scopes, str) or not scopes or not all(isinstance(s, str) for s in scopes):
            raise InvalidInput("scopes", "must be a non-empty list of the app's scopes")
        extra = [scope for scope in scopes if scope not in allowed]
        if extra:
            raise InvalidInput("scopes", "may only narrow the app's scopes")
        return tuple(dict.fromkeys(scopes))

    async def start(
        self,
        provider: str,
        workspace_id: str,
        actor_id: str,
        *,
        redirect_uri: str,
        binding: str,
        return_url: str | None = None,
        params: Mapping[str, object] | None = None,
        scopes: Sequence[str] | None = None,
    ) -> str:
        """The URL to send the user's browser to, for a new authorization request.

        ``params`` are the connection parameters given up front (a Shopify ``shop``, a
        Zendesk ``subdomain``): each must be declared by the provider and match its pattern.
        ``scopes`` narrows the app's scopes for this connection.

        Raises:
            InvalidInput: an id, a connection parameter (``params.<name>``) or ``scopes``
                is wrong.
        """
        TokenKey(provider, workspace_id, actor_id)  # ids are checked before anything is kept
        config = await self.provider(provider)
        given = await self.check_params(provider, params or {})
        spec = config.spec_for(given)
        scopes = await self.check_scopes(provider, scopes)
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
            params=given,
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

    async def posted_callback_fields(
        self, provider: str, params: Mapping[str, str]
    ) -> dict[str, str]:
        """The fields of a callback ``provider`` POSTed that are worth keeping (see
        :data:`HELD_CALLBACK_FIELDS`).

        Raises:
            UnknownProvider: ``provider`` is not configured.
            ProviderError: its discovery failed.
            InvalidInput: ``provider`` does not post its callback (its authorization
                requests do not ask for ``response_mode=form_post``), or a field is too long.
        """
        config = await self.provider(provider)
        if config.authorize_params.get("response_mode") != "form_post":
            raise InvalidInput("callback", "is not posted by this provider")
        limits = dict(HELD_CALLBACK_FIELDS)
        for param in _spec(config).connection_params:
            if param.source == "callback":
                limits.setdefault(param.name, _HELD_PARAM_LENGTH)
        kept = {name: value for name, value in params.items() if name in limits}
        if any(len(value) > limits[name] for name, value in kept.items()):
            raise InvalidInput("callback", "has a field that is too long")
        return kept

    async def hold_callback(self, provider: str, params: Mapping[str, str]) -> str:
        """Keep a callback the provider POSTed (``response_mode=form_post``) under a new
        one-time handle, for the browser's next request to pick up.

        A cross-site POST carries no ``SameSite=Lax`` cookie, so the binding cannot be
        checked on it; the browser is sent on to a top-level GET (which carries it) with
        only this handle, and the callback is finished there as usual. The handle is kept
        under ``provider``: shown at another provider's callback, it finds nothing.
        """
        if len(params) > 20 or any(len(value) > 16_384 for value in params.values()):
            raise InvalidInput("callback", "has too many or too long fields")
        return (await self._held_records(provider).save(dict(params))).secret

    async def take_held_callback(self, provider: str, handle: object) -> dict[str, str] | None:
        """``provider``'s callback kept under ``handle``, once; ``None`` if unknown, used,
        expired or another provider's (which is then left for its own callback)."""
        payload = await self._held_records(provider).take(handle)
        return None if payload is None else {str(k): str(v) for k, v in payload.items()}

    def _held_records(self, provider: str) -> AsyncPendingRecords:
        return self._vault.pending_records(f"{_HELD_KIND}:{provider}", HELD_CALLBACK_TTL)

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
        spec = config.spec_for(request.params)
        if "error" in params:
            raise ProviderError(params["error"][:100], params.get("error_description"))
        issuer = params.get("iss")
        if issuer is not None and spec.issuer is not None and issuer != spec.issuer:
            raise ProviderError("invalid_issuer", "the callback came from another issuer")
        code = params.get("code")
        if not code:
            raise ProviderError("invalid_request", "the callback carries no code")
        from_callback = pick_params(spec.connection_params, "callback", params, provider=spec.name)
        if from_callback:  # a callback value may name the token host (Zoho's accounts-server)
            spec = config.spec_for({**request.params, **from_callback})
        result = await self._redeem(config, spec, request, code)
        token = result.token or {}
        issued = _issued(token, {**request.params, **from_callback, **result.params})
        try:
            claims, from_identity = await self._check(config, spec, request, token)
        except ProviderError:
            # The tokens are thrown away: they must not stay live at the provider.
            if issued is not None and may_revoke(spec):
                await revoke_quietly(config, issued, self._http, why="discarded tokens")
            raise
        assert issued is not None  # noqa: S101 - _check refuses an answer without a token
        replaced = None
        if may_revoke(spec):
            replaced = await self._stored(request)
        await self._vault.store_tokens(
            request.provider,
            request.workspace_id,
            request.actor_id,
            issued.access_token,
            issued.refresh_token,
            token.get("expires_in"),
            token.get("scope"),
            params={**issued.params, **from_identity},
            token_response=result.response,
        )
        # Only now, with the new grant stored, and never one that shares a token with it.
        old = replaced_grant(replaced, issued)
        if old is not None:
            await revoke_quietly(config, old, self._http, why="the replaced grant")
        return claims

    async def _check(
        self,
        config: ProviderConfig,
        spec: ProviderSpec,
        request: AuthorizationState,
        token: Mapping[str, Any],
    ) -> tuple[dict[str, Any], dict[str, str]]:
        """The verified id_token claims and the identity parameters of a code exchange's
        answer.

        Raises:
            ProviderError: the id_token does not verify or is missing though ``openid``
                was requested, there is no access token, or the identity lookup failed.
        """
        claims: dict[str, Any] = {}
        id_token = token.get("id_token")
        if request.nonce is not None and not isinstance(id_token, str):
            # The nonce went out because ``openid`` was asked for: OIDC Core §3.1.3.3 makes
            # the id_token required, and without it nothing binds the answer to this flow.
            raise ProviderError("invalid_id_token", "the answer carries no id_token")
        if isinstance(id_token, str) and spec.issuer is not None:
            secret = config.client_secret
            claims = await verify_id_token(
                id_token,
                issuer=spec.issuer,
                client_id=config.client_id,
                nonce=request.nonce,
                jwks=self._jwks,
                client_secret=secret.get_secret_value() if secret else None,
            )
        access_token = token.get("access_token")
        if not isinstance(access_token, str) or not access_token:
            raise ProviderError("invalid_token_response", "no access_token in the answer")
        return claims, await self._identity(spec, access_token)

    async def _stored(self, request: AuthorizationState) -> TokenSet | None:
        """The connection this flow is about to replace, if it can be read."""
        try:
            return await self._vault.get_stored_tokens(
                request.provider, request.workspace_id, request.actor_id
            )
        except VaultError as error:  # then nothing is revoked; the connect goes on
            logger.warning("cannot read the connection a reconnect replaces: %s", error)
            return None

    async def _redeem(
        self, config: ProviderConfig, spec: ProviderSpec, request: AuthorizationState, code: str
    ) -> GrantResult:
        fields = {"code": code, "redirect_uri": request.redirect_uri}
        if request.code_verifier:
            fields["code_verifier"] = request.code_verifier
        flow = exchange(
            spec,
            client_id=config.client_id,
            client_secret=client_secret_for(config, spec),
            grant="authorization_code",
            fields=fields,
        )
        result: GrantResult = await run_async(flow, self._http)
        if result.outcome == "ok":
            return result
        raise ProviderError(_exchange_error(result.error), (result.description or "")[:300] or None)

    async def _identity(self, spec: ProviderSpec, access_token: str) -> dict[str, str]:
        """The ``identity`` connection parameters, from one call to ``identity_endpoint``."""
        if spec.identity_endpoint is None:
            return {}
        headers = {"Authorization": f"Bearer {access_token}", "Accept": "application/json"}
        try:
            response = await self._http.get(spec.identity_endpoint, headers=headers)
            document = response.json() if response.status_code == 200 else None
        except (httpx.HTTPError, ValueError) as error:
            raise ProviderError(
                "temporarily_unavailable", f"identity lookup failed: {type(error).__name__}"
            ) from None
        if not isinstance(document, (dict, list)):
            raise ProviderError("temporarily_unavailable", "identity lookup failed")
        return pick_params(spec.connection_params, "identity", document, provider=spec.name)

    async def aclose(self) -> None:
        await self._http.aclose()


def _issued(token: Mapping[str, Any], params: Mapping[str, str]) -> TokenSet | None:
    """The tokens a code exchange issued, or ``None`` without an access token."""
    access_token = token.get("access_token")
    if not isinstance(access_token, str) or not access_token:
        return None
    refresh_token = token.get("refresh_token")
    return TokenSet(
        access_token,
        refresh_token if isinstance(refresh_token, str) and refresh_token else None,
        None,
        None,
        params=dict(params),
    )


def _exchange_error(error: str | None) -> str:
    """The outcome code of a failed code exchange: a 5xx answer without an error code is
    ``server_error`` (the provider failed), a 429 or no answer at all is
    ``temporarily_unavailable``; an error code the provider sent is passed on."""
    if error is None:
        return "invalid_grant"
    if re.fullmatch(r"http_5[0-9][0-9]", error):
        return "server_error"
    if error in ("http_429", "unreachable", "no_answer"):
        return "temporarily_unavailable"
    return error[:100]


def _spec(config: ProviderConfig) -> ProviderSpec:
    if config.spec is None:  # pragma: no cover - provider() resolves it first
        raise ConfigError(f"providers.{config.name}", "has not been discovered")
    return config.spec
