"""Connect links: one-time, short-lived URLs that start a connect flow for one actor.

A link that shows the connection-parameter form is replaced by a new one-time link for the
form's answer; the new one keeps the first link's expiry, so showing the form again and
again never makes a link live longer than it was issued for.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta

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
    #: When the link issued first expires; ``None`` for a new link (its lifetime from now).
    expires_at: datetime | None = None


class ConnectLinks:
    """Issues and redeems connect links through the vault's one-time records."""

    def __init__(self, vault: AsyncOAuthTokenCache, ttl: int = DEFAULT_LINK_TTL) -> None:
        self._vault = vault
        self._ttl = timedelta(seconds=ttl)
        self._records = vault.pending_records(_KIND, ttl)

    async def create(self, link: ConnectLink) -> tuple[str, datetime]:
        """A new link token and its expiry: the link's own ``expires_at`` when it has one
        (a link re-issued for the parameter form), else the lifetime from now."""
        expires_at = link.expires_at or self._vault.now() + self._ttl
        payload = {**asdict(link), "params": dict(link.params)}
        payload["scopes"] = list(link.scopes) if link.scopes is not None else None
        # Not "expires_at": the record's own expiry is kept under that name.
        del payload["expires_at"]
        payload["link_expires_at"] = expires_at.isoformat()
        saved = await self._records.save(payload)
        return saved.secret, min(saved.expires_at, expires_at)

    async def take(self, token: object) -> ConnectLink | None:
        """The link behind ``token``, usable once; ``None`` if unknown, used or expired.
        The link carries its expiry, for :meth:`create` to keep."""
        payload = await self._records.take(token)
        if payload is None:
            return None
        scopes = payload.pop("scopes", None)
        kept = payload.pop("link_expires_at", None)  # absent from links of an older version
        expires_at = datetime.fromisoformat(kept) if isinstance(kept, str) else None
        if expires_at is not None and self._vault.now() >= expires_at:
            return None
        return ConnectLink(
            **payload,
            scopes=tuple(scopes) if scopes is not None else None,
            expires_at=expires_at,
        )
