"""The provider's refusals of the app's own client (``invalid_client``,
``unauthorized_client``), remembered per provider: a refusal is the app's configuration,
not one connection's, so no refresh is sent for that provider again with the same
configuration until a backoff passes. A changed configuration (another client id, secret
or token endpoint) is tried at once. Pure: the vault keeps one per process and passes the
time in.
"""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass

from oauthvault.oauth.token_request import GrantResult, is_client_refusal
from oauthvault.providers.config import ProviderConfig

__all__ = ["ClientRefusals", "client_fingerprint"]


def client_fingerprint(config: ProviderConfig) -> str:
    """A digest of what a refusal of the app's client depends on: the client id, its
    secret or private key, and where and how it authenticates. Never the secret itself."""
    spec = config.spec
    parts = (
        config.client_id,
        "" if config.client_secret is None else config.client_secret.get_secret_value(),
        "" if config.private_key is None else config.private_key.get_secret_value(),
        config.key_id or "",
        "" if spec is None else spec.token_endpoint,
        "" if spec is None else (spec.refresh_endpoint or ""),
        "" if spec is None else spec.token_endpoint_auth_method,
    )
    return hashlib.sha256("\x00".join(parts).encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class _Refusal:
    fingerprint: str
    at: float
    result: GrantResult


class ClientRefusals:
    """The last refusal of each provider's client, held for ``backoff`` seconds."""

    def __init__(self, backoff: float) -> None:
        self._backoff = backoff
        self._refusals: dict[str, _Refusal] = {}

    def held(self, provider: str, fingerprint: str, now: float) -> GrantResult | None:
        """The refusal to answer instead of sending a grant for ``provider`` (nothing is
        sent), or ``None``: send (no refusal, its backoff has passed, or the
        configuration has changed since)."""
        refusal = self._refusals.get(provider)
        if refusal is None or refusal.fingerprint != fingerprint:
            return None
        left = refusal.at + self._backoff - now
        if left <= 0:
            return None
        earlier = refusal.result
        why = f": {earlier.description}" if earlier.description else ""
        note = (
            f"not sent: the provider refused this app's client {now - refusal.at:.0f} s ago"
            f"{why}; the next attempt is in {left:.0f} s, or as soon as the client's "
            "configuration changes"
        )
        return dataclasses.replace(earlier, description=note)

    def record(self, provider: str, fingerprint: str, result: GrantResult, now: float) -> None:
        """Remember a refusal of the client; any answer that is not one forgets it."""
        if is_client_refusal(result):
            self._refusals[provider] = _Refusal(fingerprint, now, result)
        elif result.outcome in ("ok", "reauth"):
            self._refusals.pop(provider, None)
