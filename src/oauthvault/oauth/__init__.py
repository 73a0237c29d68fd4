"""The OAuth protocol steps: PKCE, state, the authorization-code flow, id_token checks, the
refresh grant and revocation (RFC 7009). Provider data lives in :mod:`oauthvault.providers`.
"""

from oauthvault.oauth.connect import AsyncConnector
from oauthvault.oauth.pkce import PKCEPair
from oauthvault.oauth.state import AsyncOAuthStateManager, AuthorizationState, OAuthStateManager

__all__ = [
    "AsyncConnector",
    "AsyncOAuthStateManager",
    "AuthorizationState",
    "OAuthStateManager",
    "PKCEPair",
]
