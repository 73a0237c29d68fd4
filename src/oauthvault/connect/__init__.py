"""The connect flow, above the vault: states kept through it, and the authorization-code
flow that stores what the provider grants (:mod:`oauthvault.oauth` holds the protocol
steps it uses, without I/O of the vault's)."""

from oauthvault.connect.flow import AsyncConnector
from oauthvault.connect.state import OAuthStateManager
from oauthvault.connect.state_async import AsyncOAuthStateManager

__all__ = ["AsyncConnector", "AsyncOAuthStateManager", "OAuthStateManager"]
