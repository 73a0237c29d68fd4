"""Connect links: one-time, short-lived URLs that start a connect flow for one actor."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime

from oauthvault.vault import AsyncOAuthTokenCache

__all__ = ["ConnectLink", "ConnectLinks"]

_KIND = "link"
DEFAULT_LINK_TTL = 600


@dataclass(frozen=True, slots=True)
class ConnectLink:
    provider: str
    workspace_id: str
    actor_id: str
    return_url: str | None
    params: Mapping[str, str] = field(default_factory=dict)
    scopes: tuple[str, ...] | None = None


class ConnectLinks:
    """Issues and redeems connect links through the vault's one-time records."""

    def __init__(self, vault: AsyncOAuthTokenCache, ttl: int = DEFAULT_LINK_TTL) -> None:
        self._records = vault.pending_records(_KIND, ttl)

    async def create(self, link: ConnectLink) -> tuple[str, datetime]:
        """A new link token and its expiry."""
        payload = {**asdict(link), "params": dict(link.params)}
        payload["scopes"] = list(link.scopes) if link.scopes is not None else None
        saved = await self._records.save(payload)
        return saved.secret, saved.expires_at

    async def take(self, token: object) -> ConnectLink | None:
        """The link behind ``token``, usable once; ``None`` if unknown, used or expired."""
        payload = await self._records.take(token)
        if payload is None:
            return None
        scopes = payload.pop("scopes", None)
        return ConnectLink(**payload, scopes=tuple(scopes) if scopes is not None else None)
