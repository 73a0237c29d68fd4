# WARNING: generated from connect/state_async.py by scripts/async_to_sync.py: do not edit.
# Edit connect/state_async.py, then run scripts/async_to_sync.py (scripts/test checks it).
"""``OAuthStateManager`` and ``AsyncOAuthStateManager``: create and consume OAuth states
through a vault (Redis, else the database), one time each.

:class:`AsyncOAuthStateManager` (:mod:`oauthvault.connect.state_async`, the hand-written
source) and ``OAuthStateManager`` (:mod:`oauthvault.connect.state`, generated from it by
``scripts/async_to_sync.py``) keep what :mod:`oauthvault.oauth.state` decides.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from oauthvault.errors import InvalidState
from oauthvault.oauth.state import (
    DEFAULT_STATE_TTL,
    STATE_KIND,
    AuthorizationState,
    binding_hash,
    check_state,
    state_payload,
)

if TYPE_CHECKING:
    from oauthvault.vault.pending_records import PendingRecords
    from oauthvault.vault.sync_vault import OAuthTokenCache

__all__ = ["OAuthStateManager"]


class OAuthStateManager:
    """Create and consume OAuth states, stored through ``vault`` (Redis, else the database).

    ``binding`` is a secret the caller also sets as a cookie in the user's browser; the
    state can only be consumed with the same value, so a callback opened in another
    browser fails. The record is kept under the provider and the binding's hash as well
    as the state, so a callback at another provider or from another browser finds nothing
    and leaves the state for the browser that started the flow.
    """

    def __init__(self, vault: OAuthTokenCache, ttl: int = DEFAULT_STATE_TTL) -> None:
        if ttl <= 0:
            raise ValueError("the state lifetime must be positive")
        self._vault = vault
        self._ttl = ttl

    def _records(self, provider: str, binding: str) -> PendingRecords:
        kind = f"{STATE_KIND}:{provider}:{binding_hash(binding)}"
        return self._vault.pending_records(kind, self._ttl)

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
        params: Mapping[str, str] | None = None,
    ) -> str:
        """A new state for this request; pass it as the ``state`` parameter."""
        payload = state_payload(
            provider,
            workspace_id,
            actor_id,
            redirect_uri,
            binding,
            return_url,
            code_verifier,
            nonce,
            params,
        )
        return self._records(provider, binding).save(payload).secret

    def consume_state(
        self, state: object, *, provider: str, binding: str | None
    ) -> AuthorizationState:
        """The request behind ``state``, which can never be used again.

        A state presented at another provider or with another binding is left unused.

        Raises:
            InvalidState: unknown, expired, already used, another provider's, or another
                browser's state (``other_browser`` when there is no ``binding`` at all).
        """
        if not binding:  # no cookie: surely another browser; nothing is taken
            raise InvalidState(
                "the authorization was started in another browser", other_browser=True
            )
        return check_state(self._records(provider, binding).take(state), provider, binding)
