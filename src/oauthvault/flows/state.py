"""``OAuthStateManager``: the server-side ``state`` of an authorization request.

A state is 256 random bits, handed to the provider and nowhere stored in clear. Its record
binds the request to provider, workspace, actor, redirect URI, return URL, PKCE verifier,
OIDC nonce and the browser that started it (a hash of the binding cookie), lives ten
minutes by default, and can be consumed once: a replay, an expired state, a state used at
another provider's callback or from another browser raises :class:`InvalidState`.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from oauthvault.errors import InvalidState
from oauthvault.flows.pending import Flow, save_record, take_record

if TYPE_CHECKING:
    from oauthvault.async_vault import AsyncOAuthTokenCache
from oauthvault.vault import OAuthTokenCache

__all__ = ["DEFAULT_STATE_TTL", "AsyncOAuthStateManager", "AuthorizationState", "OAuthStateManager"]

DEFAULT_STATE_TTL = 600
_KIND = "state"


def binding_hash(binding: str) -> str:
    """What the record keeps of the browser binding secret (the cookie value)."""
    return hashlib.sha256(b"oauthvault binding\x00" + binding.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class AuthorizationState:
    """Everything the callback needs to finish one authorization request."""

    provider: str
    workspace_id: str
    actor_id: str
    redirect_uri: str
    return_url: str | None
    code_verifier: str | None = field(repr=False)
    nonce: str | None = field(repr=False)
    binding_hash: str = field(repr=False)
    expires_at: datetime | None = None


class _StateManagerBase:
    def __init__(self, vault: OAuthTokenCache | AsyncOAuthTokenCache, ttl: int) -> None:
        if ttl <= 0:
            raise ValueError("the state lifetime must be positive")
        self._core = vault._core
        self._ttl = timedelta(seconds=ttl)

    def _create(
        self,
        provider: str,
        workspace_id: str,
        actor_id: str,
        redirect_uri: str,
        binding: str,
        return_url: str | None,
        code_verifier: str | None,
        nonce: str | None,
    ) -> Flow:
        payload = {
            "provider": provider,
            "workspace_id": workspace_id,
            "actor_id": actor_id,
            "redirect_uri": redirect_uri,
            "return_url": return_url,
            "code_verifier": code_verifier,
            "nonce": nonce,
            "binding_hash": binding_hash(binding),
        }
        expires_at = self._core.clock() + self._ttl
        return save_record(self._core.keyring, _KIND, payload, expires_at)

    def _consume(self, state: object, provider: str, binding: str | None) -> Flow:
        payload: dict[str, Any] | None = yield from take_record(
            self._core.keyring, _KIND, state, self._core.clock()
        )
        if payload is None:
            raise InvalidState("unknown, expired or already used state")
        record = AuthorizationState(**payload)
        if record.provider != provider:
            raise InvalidState("state was issued for another provider")
        if binding is None or not hmac.compare_digest(binding_hash(binding), record.binding_hash):
            raise InvalidState("the authorization was started in another browser")
        return record


class OAuthStateManager(_StateManagerBase):
    """Create and consume OAuth states, stored through ``vault`` (Redis, else the database).

    ``binding`` is a secret the caller also sets as a cookie in the user's browser; the
    state can only be consumed with the same value, so a callback opened in another
    browser fails.
    """

    def __init__(self, vault: OAuthTokenCache, ttl: int = DEFAULT_STATE_TTL) -> None:
        super().__init__(vault, ttl)
        self._vault = vault

    def create_state(
        self,
        provider: str,
        workspace_id: str,
        actor_id: str,
        redirect_uri: str,
        *,
        binding: str,
        return_url: str | None = None,
        code_verifier: str | None = None,
        nonce: str | None = None,
    ) -> str:
        """A new state for this request; pass it as the ``state`` parameter."""
        state: str = self._vault._run(
            self._create(
                provider,
                workspace_id,
                actor_id,
                redirect_uri,
                binding,
                return_url,
                code_verifier,
                nonce,
            )
        )
        return state

    def consume_state(
        self, state: object, *, provider: str, binding: str | None
    ) -> AuthorizationState:
        """The request behind ``state``, which can never be used again.

        Raises:
            InvalidState: unknown, expired, already used, another provider's, or another
                browser's state.
        """
        record: AuthorizationState = self._vault._run(self._consume(state, provider, binding))
        return record


class AsyncOAuthStateManager(_StateManagerBase):
    """The asyncio twin of :class:`OAuthStateManager`."""

    def __init__(self, vault: AsyncOAuthTokenCache, ttl: int = DEFAULT_STATE_TTL) -> None:
        super().__init__(vault, ttl)
        self._vault = vault

    async def create_state(
        self,
        provider: str,
        workspace_id: str,
        actor_id: str,
        redirect_uri: str,
        *,
        binding: str,
        return_url: str | None = None,
        code_verifier: str | None = None,
        nonce: str | None = None,
    ) -> str:
        """See :meth:`OAuthStateManager.create_state`."""
        state: str = await self._vault._run(
            self._create(
                provider,
                workspace_id,
                actor_id,
                redirect_uri,
                binding,
                return_url,
                code_verifier,
                nonce,
            )
        )
        return state

    async def consume_state(
        self, state: object, *, provider: str, binding: str | None
    ) -> AuthorizationState:
        """See :meth:`OAuthStateManager.consume_state`."""
        record: AuthorizationState = await self._vault._run(self._consume(state, provider, binding))
        return record
