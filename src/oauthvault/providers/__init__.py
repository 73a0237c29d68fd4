"""Provider data: the built-in catalog, the deployment's configured apps, discovery.

``load_catalog()`` knows the built-in providers; ``load_provider_configs()`` reads which
apps the deployment uses from its file, and ``provider_configs_from()`` takes the same
tables as data; ``discover()`` describes any other OpenID Connect provider, and
``apple_client_secret()`` makes the client secret Apple wants instead of a fixed one.
"""

from oauthvault.providers.apple import apple_client_secret
from oauthvault.providers.catalog import load_catalog
from oauthvault.providers.config import (
    ProviderConfig,
    load_provider_configs,
    provider_configs_from,
)
from oauthvault.providers.discovery import discover, discover_async
from oauthvault.providers.spec import ProviderSpec

__all__ = [
    "ProviderConfig",
    "ProviderSpec",
    "apple_client_secret",
    "discover",
    "discover_async",
    "load_catalog",
    "load_provider_configs",
    "provider_configs_from",
]
