"""Connect links: one-time, short-lived URLs that start a connect flow for one actor.

A link is kept under its provider, so a link shown at another provider's URL finds nothing
and stays usable. Opening a link shows a confirmation page (or the connection-parameter
form); the page's form carries a new one-time link kept under the provider *and* the hash
of the browser's binding cookie, so only that browser can post it: this one-time value is
the page's CSRF token. A link made with host binding is kept under the hash of its
``browser_secret`` instead, and only a POST carrying that secret finds it.

A re-issued link keeps the first link's expiry, so showing the form again and again never
makes a link live longer than it was issued for. A credential form's link also counts the
credentials the provider refused on it, so that a link cannot be used to try key after key.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta

from oauthvault.oauth.state import binding_hash
from oauthvault.vault import AsyncOAuthTokenCache
from oauthvault.vault.pending_records_async import AsyncPendingRecords

__all__ = ["ConnectLink", "ConnectLinks"]

_KIND = "link"
DEFAULT_LINK_TTL = 600


def _secret_hash(secret: str) -> str:
    return hashlib.sha256(b"oauthvault browser secret\x00" + secret.encode()).hexdigest()


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
    #: The workspace's name as its people know it, shown on the confirmation page.
    workspace_name: str | None = None
    #: Credentials the provider refused on this link's form so far (a credential form only).
    attempts: int = 0


class ConnectLinks:
    """Issues and redeems connect links through the vault's one-time records."""

    def __init__(self, vault: AsyncOAuthTokenCache, ttl: int = DEFAULT_LINK_TTL) -> None:
        self._vault = vault
        self._ttl = timedelta(seconds=ttl)

    def _records(
        self, provider: str, *, browser: str | None, secret: str | None
    ) -> AsyncPendingRecords:
        kind = f"{_KIND}:{provider}"
        if browser is not None:
            kind += f":browser:{binding_hash(browser)}"
        elif secret is not None:
            kind += f":host:{_secret_hash(secret)}"
        return self._vault.pending_records(kind, int(self._ttl.total_seconds()))

    async def create(
        self, link: ConnectLink, *, browser: str | None = None
    ) -> tuple[str, datetime]:
        """A new link token and its expiry: the link's own ``expires_at`` when it has one
        (a link re-issued for a page's form), else the lifetime from now. With ``browser``
        (the binding cookie), only a request carrying that cookie can take it."""
        return await self._save(link, browser=browser, secret=None)

    async def create_bound(self, link: ConnectLink) -> tuple[str, datetime, str]:
        """A new link that only a POST carrying its ``browser_secret`` (the third value,
        kept nowhere: the record is found under its hash) can take."""
        secret = secrets.token_urlsafe(32)
        token, expires_at = await self._save(link, browser=None, secret=secret)
        return token, expires_at, secret

    async def _save(
        self, link: ConnectLink, *, browser: str | None, secret: str | None
    ) -> tuple[str, datetime]:
        expires_at = link.expires_at or self._vault.now() + self._ttl
        payload = {**asdict(link), "params": dict(link.params)}
        payload["scopes"] = list(link.scopes) if link.scopes is not None else None
        # Not "expires_at": the record's own expiry is kept under that name.
        del payload["expires_at"]
        payload["link_expires_at"] = expires_at.isoformat()
        saved = await self._records(link.provider, browser=browser, secret=secret).save(payload)
        return saved.secret, min(saved.expires_at, expires_at)

    async def take(
        self,
        token: object,
        provider: str,
        *,
        browser: str | None = None,
        secret: str | None = None,
    ) -> ConnectLink | None:
        """The ``provider`` link behind ``token``, usable once; ``None`` if unknown, used,
        expired, another provider's, or (with ``browser`` or ``secret``) not issued for
        that browser or secret, and then nothing is used up. The link carries its expiry,
        for :meth:`create` to keep."""
        records = self._records(provider, browser=browser, secret=secret)
        payload = await records.take(token)
        if payload is None:
            return None
        scopes = payload.pop("scopes", None)
        kept = payload.pop("link_expires_at", None)
        expires_at = datetime.fromisoformat(kept) if isinstance(kept, str) else None
        if expires_at is not None and self._vault.now() >= expires_at:
            return None
        if payload.get("provider") != provider:  # pragma: no cover - the kind names it
            return None
        return ConnectLink(
            **payload,
            scopes=tuple(scopes) if scopes is not None else None,
            expires_at=expires_at,
        )
