"""``requests`` authentication for a vault connection of any kind (needs the ``requests``
package): placed and answered on a 401 as :mod:`oauthvault.adapters.httpx_auth` does."""

from __future__ import annotations

import weakref
from typing import Any

import requests
from requests.auth import AuthBase

from oauthvault.providers.credentials import Placement
from oauthvault.vault import OAuthTokenCache

__all__ = ["VaultRequestsAuth"]


def _apply(request: requests.PreparedRequest, placement: Placement) -> None:
    """Put the credential on ``request``: headers, and query parameters."""
    request.headers.update(placement.headers)
    if placement.query:
        request.prepare_url(request.url or "", dict(placement.query))


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
        placement = self._vault.request_auth(*self._ids)
        _apply(request, placement)
        if placement.renewable:
            request.register_hook("response", self._retry_once_on_401)
        else:
            request.register_hook("response", self._verify_on_401)
        return request

    def _verify_on_401(self, response: requests.Response, **kwargs: Any) -> requests.Response:
        """A static credential refused: ask the provider again (a refused one is marked
        ``needs_reauth``); nothing is retried, only its owner can replace it."""
        if response.status_code == 401:
            self._vault.verify_credentials(*self._ids)
        return response

    def _retry_once_on_401(self, response: requests.Response, **kwargs: Any) -> requests.Response:
        if response.status_code != 401 or response.request in self._retries:
            return response
        self._vault.refresh_tokens(*self._ids)
        retry = response.request.copy()
        _apply(retry, self._vault.request_auth(*self._ids))
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
