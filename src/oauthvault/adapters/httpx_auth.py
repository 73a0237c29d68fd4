"""``httpx.Auth`` for a vault connection (sync and async clients)."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Generator

import httpx

from oauthvault.vault import AsyncOAuthTokenCache, OAuthTokenCache

__all__ = ["AsyncVaultAuth", "VaultAuth"]


class VaultAuth(httpx.Auth):
    """``httpx.Client(auth=VaultAuth(vault, "google", "ws_1", "user_1"))``."""

    def __init__(
        self, vault: OAuthTokenCache, provider: str, workspace_id: str, actor_id: str
    ) -> None:
        self._vault = vault
        self._ids = (provider, workspace_id, actor_id)

    def sync_auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response]:
        request.headers["Authorization"] = f"Bearer {self._vault.get_access_token(*self._ids)}"
        response = yield request
        if response.status_code == 401:
            fresh = self._vault.refresh_tokens(*self._ids)
            request.headers["Authorization"] = f"Bearer {fresh.access_token}"
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
        token = await self._vault.get_access_token(*self._ids)
        request.headers["Authorization"] = f"Bearer {token}"
        response = yield request
        if response.status_code == 401:
            fresh = await self._vault.refresh_tokens(*self._ids)
            request.headers["Authorization"] = f"Bearer {fresh.access_token}"
            yield request

    def __repr__(self) -> str:
        return f"AsyncVaultAuth{self._ids!r}"
