"""Connect links: one-time, short-lived URLs that start a connect flow for one actor."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from oauthvault.async_vault import AsyncOAuthTokenCache
from oauthvault.flows.pending import save_record, take_record

__all__ = ["ConnectLink", "ConnectLinks"]

_KIND = "link"
DEFAULT_LINK_TTL = 600


@dataclass(frozen=True, slots=True)
class ConnectLink:
    provider: str
    workspace_id: str
    actor_id: str
    return_url: str | None


class ConnectLinks:
    """Issues and redeems connect links through the vault's one-time record store."""

    def __init__(self, vault: AsyncOAuthTokenCache, ttl: int = DEFAULT_LINK_TTL) -> None:
        self._vault = vault
        self._ttl = timedelta(seconds=ttl)

    async def create(self, link: ConnectLink) -> tuple[str, datetime]:
        """A new link token and its expiry."""
        core = self._vault._core
        expires_at = core.clock() + self._ttl
        payload: dict[str, Any] = {
            "provider": link.provider,
            "workspace_id": link.workspace_id,
            "actor_id": link.actor_id,
            "return_url": link.return_url,
        }
        token: str = await self._vault._run(save_record(core.keyring, _KIND, payload, expires_at))
        return token, expires_at

    async def take(self, token: object) -> ConnectLink | None:
        """The link behind ``token``, usable once; ``None`` if unknown, used or expired."""
        core = self._vault._core
        payload = await self._vault._run(take_record(core.keyring, _KIND, token, core.clock()))
        return None if payload is None else ConnectLink(**payload)
