"""How a client authenticates at a provider's token and revocation endpoints."""

from __future__ import annotations

from datetime import UTC, datetime

from oauthvault.errors import ConfigError
from oauthvault.providers.apple import apple_client_secret
from oauthvault.providers.config import ProviderConfig
from oauthvault.providers.spec import ProviderSpec

__all__ = ["client_secret_for"]


def client_secret_for(config: ProviderConfig, spec: ProviderSpec) -> str | None:
    """The client secret to present: the configured one, or Apple's generated JWT."""
    if spec.client_secret_kind == "apple_es256_jwt":  # noqa: S105 - a kind, not a secret
        if not (config.team_id and config.key_id and config.private_key):
            raise ConfigError(f"providers.{config.name}", "needs team_id, key_id, private_key")
        return apple_client_secret(
            team_id=config.team_id,
            client_id=config.client_id,
            key_id=config.key_id,
            private_key_pem=config.private_key.get_secret_value(),
            now=datetime.now(UTC),
        )
    return config.client_secret.get_secret_value() if config.client_secret else None
