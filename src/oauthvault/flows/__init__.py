"""The data half of the connect flow: provider catalog and configuration, PKCE, discovery.

``load_catalog()`` knows the built-in providers, ``load_provider_configs()`` reads which
apps the deployment uses, ``discover()`` describes any other OpenID Connect provider,
``PKCEPair`` and ``apple_client_secret()`` make the values an authorization needs.
"""

from oauthvault.flows.apple import apple_client_secret
from oauthvault.flows.discovery import discover, discover_async
from oauthvault.flows.pkce import PKCEPair
from oauthvault.flows.provider_config import ProviderConfig, load_provider_configs
from oauthvault.flows.providers import ProviderSpec, load_catalog

__all__ = [
    "PKCEPair",
    "ProviderConfig",
    "ProviderSpec",
    "apple_client_secret",
    "discover",
    "discover_async",
    "load_catalog",
    "load_provider_configs",
]
