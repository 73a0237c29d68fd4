"""The OAuth protocol steps: PKCE, state, id_token checks, the refresh grant and revocation
(RFC 7009). Provider data lives in :mod:`oauthvault.providers`; the connect flow and the
state managers, which store through the vault, in :mod:`oauthvault.connect`.
"""

from oauthvault.oauth.pkce import PKCEPair
from oauthvault.oauth.state import AuthorizationState

__all__ = ["AuthorizationState", "PKCEPair"]

_MOVED = {"AsyncConnector", "AsyncOAuthStateManager", "OAuthStateManager"}


def __getattr__(name: str) -> object:
    # Importable from here before 0.2 (now in oauthvault.connect): kept, with a warning.
    if name in _MOVED:
        import warnings

        import oauthvault.connect

        warnings.warn(
            f"oauthvault.oauth.{name} is now oauthvault.connect.{name}",
            DeprecationWarning,
            stacklevel=2,
        )
        return getattr(oauthvault.connect, name)
    raise AttributeError(f"module 'oauthvault.oauth' has no attribute {name!r}")
