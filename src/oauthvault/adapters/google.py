"""Google ``Credentials`` backed by the vault (needs the ``google-auth`` package).

``build("gmail", "v1", credentials=vault_credentials(vault, "ws_1", "user_1"))`` works as in
the seed design; when Google's libraries decide to refresh, the refresh goes through the
vault (one refresh grant for all workers), never through google-auth's own token request.
"""

from __future__ import annotations

from datetime import UTC
from typing import Any

from google.oauth2.credentials import Credentials

from oauthvault.models import TokenSet
from oauthvault.vault import OAuthTokenCache

__all__ = ["VaultCredentials", "vault_credentials"]


def _naive_utc(tokens: TokenSet) -> Any:
    # google-auth compares expiry with a naive UTC datetime.
    return (
        None
        if tokens.expires_at is None
        else tokens.expires_at.astimezone(UTC).replace(tzinfo=None)
    )


class VaultCredentials(Credentials):
    """OAuth2 credentials whose token and refresh come from an :class:`OAuthTokenCache`."""

    def __init__(
        self, vault: OAuthTokenCache, provider: str, workspace_id: str, actor_id: str
    ) -> None:
        tokens = vault.get_fresh_tokens(provider, workspace_id, actor_id)
        scopes = tokens.scope.split() if tokens.scope else None
        super().__init__(  # type: ignore[no-untyped-call]  # google-auth is untyped here
            token=tokens.access_token, expiry=_naive_utc(tokens), scopes=scopes
        )
        self._vault = vault
        self._ids = (provider, workspace_id, actor_id)

    @property
    def requires_scopes(self) -> bool:
        return False

    def refresh(self, request: Any) -> None:
        """Refresh through the vault (``request`` is google-auth's transport, unused)."""
        tokens = self._vault.refresh_tokens(*self._ids)
        self.token = tokens.access_token
        self.expiry = _naive_utc(tokens)

    def __repr__(self) -> str:
        return f"VaultCredentials{self._ids!r}"


def vault_credentials(
    vault: OAuthTokenCache, workspace_id: str, actor_id: str, provider: str = "google"
) -> VaultCredentials:
    """Credentials for a Google connection stored in ``vault``."""
    return VaultCredentials(vault, provider, workspace_id, actor_id)
