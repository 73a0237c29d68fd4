"""The server-side ``state`` of an authorization request (no I/O here; the state managers
of :mod:`oauthvault.connect.state` keep it through a vault).

A state is 256 random bits, handed to the provider and nowhere stored in clear. Its record
binds the request to provider, workspace, actor, redirect URI, return URL, PKCE verifier,
OIDC nonce, the connection's parameters and the browser that started it (a hash of the
binding cookie), lives ten minutes by default, and can be consumed once: a replay, an
expired state, a state used at another provider's callback or from another browser raises
:class:`InvalidState`.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from oauthvault.errors import InvalidState

__all__ = [
    "DEFAULT_STATE_TTL",
    "STATE_KIND",
    "AuthorizationState",
    "binding_hash",
    "check_state",
    "state_payload",
]

DEFAULT_STATE_TTL = 600
#: The kind of one-time record a state is kept as.
STATE_KIND = "state"


def binding_hash(binding: str) -> str:
    """What the record keeps of the browser binding secret (the cookie value)."""
    return hashlib.sha256(b"oauthvault binding\x00" + binding.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class AuthorizationState:
    """Everything the callback needs to finish one authorization request."""

    provider: str
    workspace_id: str
    actor_id: str
    redirect_uri: str
    return_url: str | None
    code_verifier: str | None = field(repr=False)
    nonce: str | None = field(repr=False)
    binding_hash: str = field(repr=False)
    expires_at: datetime | None = None
    params: Mapping[str, str] = field(default_factory=dict)


def state_payload(
    provider: str,
    workspace_id: str,
    actor_id: str,
    redirect_uri: str,
    binding: str,
    return_url: str | None,
    code_verifier: str | None,
    nonce: str | None,
    params: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """What a state's record holds (the binding only as its hash)."""
    return {
        "params": dict(params or {}),
        "provider": provider,
        "workspace_id": workspace_id,
        "actor_id": actor_id,
        "redirect_uri": redirect_uri,
        "return_url": return_url,
        "code_verifier": code_verifier,
        "nonce": nonce,
        "binding_hash": binding_hash(binding),
    }


def check_state(
    payload: dict[str, Any] | None, provider: str, binding: str | None
) -> AuthorizationState:
    """The request a taken record describes, if it may finish at ``provider``'s callback in
    the browser holding ``binding``.

    Raises:
        InvalidState: unknown, expired, already used, another provider's, or another
            browser's state.
    """
    if payload is None:
        raise InvalidState("unknown, expired or already used state")
    record = AuthorizationState(**payload)
    if record.provider != provider:
        raise InvalidState("state was issued for another provider")
    if binding is None or not hmac.compare_digest(binding_hash(binding), record.binding_hash):
        raise InvalidState("the authorization was started in another browser", other_browser=True)
    return record
