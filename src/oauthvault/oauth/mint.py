"""Minting a short-lived token from a non-OAuth credential: the step that takes the place
of the refresh grant for ``app`` and ``two_step`` connections (run under the same lease,
so exactly once across processes).

Sans-I/O, like :mod:`oauthvault.oauth.token_request`: an :data:`Exchange` generator.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime

from oauthvault.models import Credentials
from oauthvault.oauth.token_request import Exchange, GrantResult
from oauthvault.providers.credentials import CredentialSpec

__all__ = ["mint_token"]


def mint_token(
    spec: CredentialSpec,
    app: object | None,
    fields: Credentials,
    params: Mapping[str, str],
    clock: Callable[[], datetime],
) -> Exchange:
    """A new token for a connection of ``spec`` (its ``app`` settings, if any)."""
    return GrantResult(
        "config",
        error="unsupported_credential",
        description=f"{spec.name}: minting {spec.auth} tokens is not available yet",
    )
    yield  # pragma: no cover - a generator
