"""Admin console sign-in: the credential check, the session cookie, CSRF tokens and the
throttle on failed sign-ins.

The credential is configured as its SHA-256 (like the API keys) and generated with 256 bits
of randomness, so a hash is a fine verifier. A session is a sealed record (AES-256-GCM with
the vault's key ring, bound to its purpose): every instance that shares the key ring can
open it, nobody can forge or read it, and it carries its own expiry, CSRF token and id.
A session ends when it expires, when another credential is configured (every session is
bound to the credential's hash), or when its operator signs out: the console then records its
id as ended in the database, which every instance checks (a copied cookie ends too).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass

from oauthvault.crypto.envelope import open_sealed, seal
from oauthvault.crypto.keyring import KeyRing
from oauthvault.errors import DecryptionError

__all__ = [
    "ADMIN_PREFIX",
    "AdminSession",
    "AdminSessions",
    "LoginThrottle",
    "generate_admin_credential",
    "hash_admin_credential",
]

ADMIN_PREFIX = "ova_"
_PURPOSE = b"oauthvault admin session\x00v1"


def generate_admin_credential() -> str:
    """A new random admin credential (256 bits), recognisable by its ``ova_`` prefix."""
    return ADMIN_PREFIX + secrets.token_urlsafe(32)


def hash_admin_credential(credential: str) -> str:
    """The hex SHA-256 that the configuration keeps instead of the credential."""
    return hashlib.sha256(credential.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class AdminSession:
    """A signed-in session: when it ends (epoch seconds), the CSRF token its forms carry
    and its id (what signing out records as ended)."""

    expires_at: float
    csrf: str = ""
    id: str = ""

    def __repr__(self) -> str:
        return f"AdminSession(expires_at={self.expires_at!r})"

    def accepts(self, presented: object) -> bool:
        """True when a form's CSRF token is this session's."""
        return isinstance(presented, str) and hmac.compare_digest(
            presented.encode(), self.csrf.encode()
        )


class AdminSessions:
    """Checks the credential and issues and opens session cookies."""

    def __init__(
        self,
        keyring: Callable[[], KeyRing],
        credential_sha256: str,
        ttl: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._keyring = keyring
        self._digest = credential_sha256
        # Sessions are bound to the credential: configuring a new one ends every session.
        self._purpose = _PURPOSE + b"\x00" + credential_sha256.encode()
        self.ttl = ttl
        self._clock = clock

    def __repr__(self) -> str:
        return f"AdminSessions(ttl={self.ttl!r})"

    def now(self) -> float:
        """The current time, epoch seconds (the clock sessions expire by)."""
        return self._clock()

    def check_credential(self, presented: object) -> bool:
        if not isinstance(presented, str) or not presented or len(presented) > 512:
            return False
        return hmac.compare_digest(hash_admin_credential(presented), self._digest)

    def issue(self) -> tuple[str, AdminSession]:
        """A new session and its cookie value."""
        session = AdminSession(
            self._clock() + self.ttl, secrets.token_urlsafe(32), secrets.token_urlsafe(16)
        )
        payload = json.dumps(
            {"exp": session.expires_at, "csrf": session.csrf, "sid": session.id}
        ).encode()
        sealed = seal(self._keyring(), payload, self._purpose, "admin-session")
        return base64.urlsafe_b64encode(sealed).decode().rstrip("="), session

    def open(self, cookie: str | None) -> AdminSession | None:
        """The session in ``cookie``; ``None`` if absent, altered, foreign or expired (the
        caller checks that it was not signed out of)."""
        if not cookie or len(cookie) > 4096:
            return None
        try:
            sealed = base64.urlsafe_b64decode(cookie + "=" * (-len(cookie) % 4))
            opened = open_sealed(self._keyring(), sealed, self._purpose, "admin-session")
            payload = json.loads(opened)
            session = AdminSession(float(payload["exp"]), str(payload["csrf"]), str(payload["sid"]))
        except (binascii.Error, ValueError, KeyError, TypeError, DecryptionError):
            return None
        return session if session.expires_at > self._clock() else None


class LoginThrottle:
    """At most ``limit`` failed sign-ins per client address in ``window`` seconds (in this
    process; remembers at most ``capacity`` addresses)."""

    def __init__(
        self,
        limit: int = 5,
        window: float = 300.0,
        capacity: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._limit = limit
        self._window = window
        self._capacity = capacity
        self._clock = clock
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()

    def _recent(self, address: str) -> deque[float]:
        failures = self._failures.get(address, deque())
        cutoff = self._clock() - self._window
        while failures and failures[0] <= cutoff:
            failures.popleft()
        return failures

    def blocked(self, address: str) -> bool:
        return len(self._recent(address)) >= self._limit

    def failed(self, address: str) -> None:
        failures = self._recent(address)
        failures.append(self._clock())
        self._failures[address] = failures
        self._failures.move_to_end(address)
        while len(self._failures) > self._capacity:
            self._failures.popitem(last=False)

    def succeeded(self, address: str) -> None:
        self._failures.pop(address, None)
