"""Proof Key for Code Exchange (RFC 7636): a secret verifier and its S256 challenge.

Pure: no I/O. The challenge goes in the authorization request, the verifier stays on the
server until the token request.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass, field
from typing import Literal

# Authlib ships no type information (no py.typed); the one function used returns str.
from authlib.oauth2.rfc7636 import create_s256_code_challenge

from oauthvault.errors import InvalidInput

__all__ = ["PKCEPair"]

# RFC 7636 §4.1: 43 to 128 characters from the unreserved set.
_VERIFIER = re.compile(r"^[A-Za-z0-9\-._~]{43,128}$")
# 32 random bytes = 256 bits, base64url without padding = 43 characters.
_VERIFIER_BYTES = 32


@dataclass(frozen=True, slots=True)
class PKCEPair:
    """A code verifier (hidden from ``repr`` and ``str``) and its ``S256`` challenge."""

    verifier: str = field(repr=False)
    challenge: str
    method: Literal["S256"] = "S256"

    @classmethod
    def generate(cls) -> PKCEPair:
        """A fresh pair whose verifier holds 256 bits from :mod:`secrets` (43 characters)."""
        return cls.from_verifier(secrets.token_urlsafe(_VERIFIER_BYTES))

    @classmethod
    def from_verifier(cls, verifier: str) -> PKCEPair:
        """The pair for an existing verifier, e.g. one restored from the flow's state.

        Raises:
            InvalidInput: ``verifier`` is not 43-128 characters of ``A-Z a-z 0-9 - . _ ~``.
        """
        if not isinstance(verifier, str) or not _VERIFIER.match(verifier):
            raise InvalidInput("verifier", "must be 43-128 characters of A-Z a-z 0-9 - . _ ~")
        challenge: str = create_s256_code_challenge(verifier)
        return cls(verifier=verifier, challenge=challenge)
