"""``httpx.Auth`` for a vault connection of any kind (sync and async clients).

The credential goes where its kind puts it (:meth:`~oauthvault.OAuthTokenCache.request_auth`):
a bearer token for OAuth, app-minted and two-step connections, the catalog's headers,
HTTP Basic or query parameters for API keys and passwords. A ``401`` is answered once:
with a new token and a retry for a renewable kind, with a verification of the stored
credential for a static one (a refused credential is marked ``needs_reauth``).
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Generator

import httpx

from oauthvault.oauth.api_calls import apply_placement
from oauthvault.vault import AsyncOAuthTokenCache, OAuthTokenCache

__all__ = ["AsyncVaultAuth", "VaultAuth", "apply_placement"]


class VaultAuth(httpx.Auth):
    """``httpx.Client(auth=VaultAuth(vault, "google", "ws_1", "user_1"))``."""

    def __init__(
        self, vault: OAuthTokenCache, provider: str, workspace_id: str, actor_id: str
    ) -> None:
        self._vault = vault
        self._ids = (provider, workspace_id, actor_id)

    def sync_auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response]:
        placement = self._vault.request_auth(*self._ids)
        apply_placement(request, placement)
        response = yield request
        if response.status_code != 401:
            return
        if not placement.renewable:
            self._vault.verify_credentials(*self._ids)
            return
        self._vault.refresh_tokens(*self._ids)
        apply_placement(request, self._vault.request_auth(*self._ids))
        yield request

    def __repr__(self) -> str:
        return f"VaultAuth{self._ids!r}"


class AsyncVaultAuth(httpx.Auth):
    """``httpx.AsyncClient(auth=AsyncVaultAuth(async_vault, …))``."""

    def __init__(
        self, vault: AsyncOAuthTokenCache, provider: str, workspace_id: str, actor_id: str
    ) -> None:
        self._vault = vault
        self._ids = (provider, workspace_id, actor_id)

    async def async_auth_flow(
        self, request: httpx.Request
    ) -> AsyncGenerator[httpx.Request, httpx.Response]:
        placement = await self._vault.request_auth(*self._ids)
        apply_placement(request, placement)
        response = yield request
        if response.status_code != 401:
            return
        if not placement.renewable:
            await self._vault.verify_credentials(*self._ids)
            return
        await self._vault.refresh_tokens(*self._ids)
        apply_placement(request, await self._vault.request_auth(*self._ids))
        yield request

    def __repr__(self) -> str:
        return f"AsyncVaultAuth{self._ids!r}"
