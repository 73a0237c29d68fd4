"""Tokens the connect flow lets go of: revoked at the provider, when that is safe.

Two kinds: the tokens of a code exchange the flow then refuses (an id_token that does not
verify, a failed identity lookup), and the grant a reconnect replaces. Revoking a token
can end more than that token: at Google it ends the user's whole authorization of the app,
and oidc-provider (with its default ``revokeGrantPolicy``) ends the whole grant, which a
re-authorization in the same session reuses. So both are revoked only for a provider whose
spec says ``independent_grants`` (each authorization has a grant of its own, and revoking
ends only that one), and a replaced grant only when it shares no token with the new one;
the new connection is stored first. A revocation that fails is logged, never raised.
"""

from __future__ import annotations

import hmac
import logging

import httpx

from oauthvault.models import TokenSet
from oauthvault.oauth.revoke import revoke_tokens_async
from oauthvault.providers.config import ProviderConfig
from oauthvault.providers.spec import ProviderSpec

__all__ = ["may_revoke", "replaced_grant", "revoke_quietly"]

logger = logging.getLogger("oauthvault.providers")


def may_revoke(spec: ProviderSpec) -> bool:
    """Whether the connect flow may revoke tokens it lets go of at this provider (pure)."""
    return spec.independent_grants and spec.revocation_method is not None


def replaced_grant(old: TokenSet | None, new: TokenSet) -> TokenSet | None:
    """The tokens of ``old`` to revoke once ``new`` replaced them, or ``None`` when there
    is nothing to revoke or they may be the same grant: a refresh or access token the
    same, or ``old`` a client-credentials connection (pure)."""
    if old is None or old.client_credentials is not None:
        return None
    if _same(old.access_token, new.access_token) or _same(old.refresh_token, new.refresh_token):
        return None
    return old


def _same(old: str | None, new: str | None) -> bool:
    return old is not None and new is not None and hmac.compare_digest(old, new)


async def revoke_quietly(
    config: ProviderConfig, tokens: TokenSet, http: httpx.AsyncClient, *, why: str
) -> bool | None:
    """Revoke ``tokens`` (see :func:`~oauthvault.oauth.revoke.revoke_tokens_async`),
    logging a failure at WARNING with ``why`` and the provider, never a token."""
    try:
        revoked = await revoke_tokens_async(config, tokens, http)
    except Exception as error:  # best effort: the connect flow's answer must not change
        logger.warning("revoking %s at %s failed: %s", why, config.name, type(error).__name__)
        return False
    if revoked is False:
        logger.warning("revoking %s at %s failed", why, config.name)
    return revoked
