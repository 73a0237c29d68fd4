"""``requests`` authentication for a vault connection (needs the ``requests`` package)."""

from __future__ import annotations

import weakref
from typing import Any

import requests
from requests.auth import AuthBase

from oauthvault.vault import OAuthTokenCache

__all__ = ["VaultRequestsAuth"]


class VaultRequestsAuth(AuthBase):
    """``requests.get(url, auth=VaultRequestsAuth(vault, "google", "ws_1", "user_1"))``."""

    def __init__(
        self, vault: OAuthTokenCache, provider: str, workspace_id: str, actor_id: str
    ) -> None:
        self._vault = vault
        self._ids = (provider, workspace_id, actor_id)
        # The retries this auth sent, so a 401 to a retry is returned, not retried again.
        self._retries: weakref.WeakSet[requests.PreparedRequest] = weakref.WeakSet()

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = f"Bearer {self._vault.get_access_token(*self._ids)}"
        request.register_hook("response", self._retry_once_on_401)
        return request

    def _retry_once_on_401(self, response: requests.Response, **kwargs: Any) -> requests.Response:
        if response.status_code != 401 or response.request in self._retries:
            return response
        fresh = self._vault.refresh_tokens(*self._ids)
        retry = response.request.copy()
        retry.headers["Authorization"] = f"Bearer {fresh.access_token}"
        self._retries.add(retry)
        response.content  # noqa: B018 - drain the body so the connection can be reused
        response.close()
        connection = response.connection
        new: requests.Response = connection.send(retry, **kwargs)
        new.history.append(response)
        new.request = retry
        return new

    def __repr__(self) -> str:
        return f"VaultRequestsAuth{self._ids!r}"
