"""Refreshing a connection exactly once, however many workers ask at the same moment.

The flow locks the connection's row in the database (Redis may be down), re-reads it inside
the lock, and only then decides: a token another worker has just refreshed is returned as
is; otherwise one refresh grant is made, and the new tokens are committed before the lock
is released. Failures are classified: ``invalid_grant`` and kin mark the connection
``needs_reauth``; timeouts, 5xx and 429 are retried a bounded number of times, then mark it
``degraded`` while its current token is served for as long as it stays valid.

The window that cannot be closed: between the provider issuing a new (rotated) refresh
token and our commit of it, a crash loses it, and the stored one has been retired. Nothing
else happens in that window: the answer is parsed, sealed and committed at once. For the
same reason a request that may have reached a rotating provider (a read timeout) is never
retried with the old refresh token.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Generator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, Literal

from oauthvault.cache.keys import cache_key
from oauthvault.errors import ProviderError, ReauthorizationRequired, TokenNotFound
from oauthvault.models import TokenKey, TokenSet, validate_tokens
from oauthvault.records import SealedRow, open_row, seal_cache_record, seal_row
from oauthvault.steps import RecordInvalidation, Step, VaultCore, WriteCache, cache_ttl

__all__ = [
    "ConnectionEvent",
    "ConnectionStatus",
    "GrantResult",
    "RetryPolicy",
    "classify_failure",
    "refresh_flow",
]

logger = logging.getLogger("oauthvault.refresh")


class ConnectionStatus(StrEnum):
    ACTIVE = "active"
    DEGRADED = "degraded"
    NEEDS_REAUTH = "needs_reauth"
    REVOKED = "revoked"


# RFC 6749 §5.2 answers after which retrying cannot help: the grant is gone.
_REAUTH_ERRORS = frozenset({"invalid_grant", "unauthorized_client", "invalid_scope"})
# Our own configuration is wrong: not the user's doing, and not transient either.
_CONFIG_ERRORS = frozenset({"invalid_client", "invalid_request", "unsupported_grant_type"})


@dataclass(frozen=True, slots=True)
class GrantResult:
    """What one refresh grant came to. ``token`` holds the provider's answer when ok."""

    outcome: Literal["ok", "reauth", "config", "transient"]
    token: Mapping[str, Any] | None = field(default=None, repr=False)
    error: str | None = None
    description: str | None = None
    # False when the request may have reached the provider (a rotated refresh token
    # could then already be retired): retrying with the old one would kill the grant.
    retry_safe: bool = True


def classify_failure(
    status_code: int | None, error: str | None, description: str | None, *, retry_safe: bool
) -> GrantResult:
    """Map a failed token request to an outcome (pure)."""
    if error in _REAUTH_ERRORS:
        return GrantResult("reauth", error=error, description=description)
    if error in _CONFIG_ERRORS:
        return GrantResult("config", error=error, description=description)
    if status_code is not None and 400 <= status_code < 500 and status_code != 429:
        if error is not None:
            return GrantResult("config", error=error, description=description)
    return GrantResult(
        "transient",
        error=error or (f"http_{status_code}" if status_code else "unreachable"),
        description=description,
        retry_safe=retry_safe,
    )


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Bounded retries with exponential backoff and full jitter."""

    attempts: int = 3
    base_delay: float = 0.2
    max_delay: float = 2.0

    def delay(self, attempt: int) -> float:
        ceiling = min(self.max_delay, self.base_delay * (2**attempt))
        return random.uniform(ceiling / 2, ceiling)  # noqa: S311 - jitter, not a secret


@dataclass(frozen=True, slots=True)
class ConnectionEvent:
    """A change worth telling the application about: ``refreshed``, or a status change."""

    kind: Literal["refreshed", "status_changed"]
    provider: str
    workspace_id: str
    actor_id: str
    status: str
    previous_status: str | None
    error: str | None
    at: datetime


# --- steps only the refresh flow needs -----------------------------------------------------


@dataclass(frozen=True, slots=True)
class LockRow:
    """Result: ``(SealedRow | None, status | None)``, the row locked until CommitLock."""

    key: TokenKey


@dataclass(frozen=True, slots=True)
class UpdateLocked:
    row: SealedRow | None
    status: str
    last_error: str | None
    refreshed_at: datetime | None


@dataclass(frozen=True, slots=True)
class CommitLock:
    """Commit what UpdateLocked wrote and release the lock."""


@dataclass(frozen=True, slots=True)
class RefreshGrant:
    """Result: a :class:`GrantResult`."""

    provider: str
    refresh_token: str = field(repr=False)


@dataclass(frozen=True, slots=True)
class Pause:
    seconds: float


@dataclass(frozen=True, slots=True)
class Emit:
    event: ConnectionEvent


RefreshStep = Step | LockRow | UpdateLocked | CommitLock | RefreshGrant | Pause | Emit
RefreshFlow = Generator[RefreshStep, Any, TokenSet]


def is_fresh(tokens: TokenSet, now: datetime, min_ttl: float) -> bool:
    """True when the access token stays valid for at least ``min_ttl`` seconds."""
    left = tokens.seconds_left(now)
    return left is None or left >= min_ttl


def merge_answer(current: TokenSet, answer: Mapping[str, Any], now: datetime) -> TokenSet:
    """The new token set: the new access token, the new refresh token when the provider
    rotated it, the old one when it did not. Raises ``InvalidInput`` for a malformed answer,
    so nothing stored is ever overwritten by one."""
    access = answer.get("access_token")
    refresh = answer.get("refresh_token") or current.refresh_token
    expires_in = answer.get("expires_in")
    if isinstance(expires_in, str) and expires_in.isdigit():
        expires_in = int(expires_in)
    scope = answer.get("scope")
    scope = scope if isinstance(scope, str) else current.scope
    validate_tokens(access, refresh, expires_in, scope)
    expires_at = None if expires_in is None else now + timedelta(seconds=expires_in)
    return TokenSet(access, refresh, expires_at, scope)  # type: ignore[arg-type]


def refresh_flow(
    core: VaultCore,
    key: TokenKey,
    *,
    min_ttl: float,
    force: bool,
    seen: TokenSet | None,
    policy: RetryPolicy,
) -> RefreshFlow:
    """Lock, re-read, refresh at most once, commit, then update the cache."""
    row, status = yield LockRow(key)
    if row is None:
        yield CommitLock()
        raise TokenNotFound(f"no tokens stored for {key.provider}/{key.workspace_id}")
    current = open_row(core.keyring, key, row)
    now = core.clock()
    refreshed_meanwhile = seen is not None and current.access_token != seen.access_token
    if not force and (
        is_fresh(current, now, min_ttl) or (refreshed_meanwhile and is_fresh(current, now, 1))
    ):
        yield CommitLock()
        return current

    def change(new_status: str, error: str | None) -> Generator[RefreshStep, Any, None]:
        yield UpdateLocked(None, new_status, error, None)
        yield CommitLock()
        if new_status != status:
            yield Emit(_event(key, "status_changed", new_status, status, error, now))

    if status in (ConnectionStatus.NEEDS_REAUTH, ConnectionStatus.REVOKED):
        yield CommitLock()
        raise ReauthorizationRequired("invalid_grant", f"the connection is {status}")
    if current.refresh_token is None:
        yield from change(ConnectionStatus.NEEDS_REAUTH, "no_refresh_token")
        raise ReauthorizationRequired("invalid_grant", "no refresh token is stored")

    result = GrantResult("transient", error="not_attempted")
    for attempt in range(policy.attempts):
        result = yield RefreshGrant(key.provider, current.refresh_token)
        if result.outcome != "transient" or not result.retry_safe:
            break
        if attempt + 1 < policy.attempts:
            yield Pause(policy.delay(attempt))
    if result.outcome == "ok" and result.token is not None:
        try:
            new = merge_answer(current, result.token, now)
        except ValueError:
            result = GrantResult("transient", error="malformed_answer")
        else:
            yield UpdateLocked(seal_row(core.keyring, key, new), "active", None, now)
            yield CommitLock()
            if core.has_cache:
                name = cache_key(key)
                ttl = cache_ttl(new, now, core.default_cache_ttl)
                value = seal_cache_record(core.keyring, key, new)
                if ttl is None or not (yield WriteCache(name, value, ttl, only_if_absent=False)):
                    yield RecordInvalidation(name)
            if status != ConnectionStatus.ACTIVE:
                yield Emit(_event(key, "status_changed", "active", status, None, now))
            yield Emit(_event(key, "refreshed", "active", status, None, now))
            return new
    error = _describe(result)
    if result.outcome == "reauth":
        yield from change(ConnectionStatus.NEEDS_REAUTH, error)
        raise ReauthorizationRequired(result.error or "invalid_grant", result.description)
    yield from change(ConnectionStatus.DEGRADED, error)
    if (
        result.outcome == "transient"
        and current.seconds_left(now) not in (None,)
        and (current.seconds_left(now) or 0) > 0
    ):
        logger.warning("refresh of %s failed (%s); serving the current token", key, error)
        return current
    raise ProviderError(result.error or "temporarily_unavailable", result.description)


def _describe(result: GrantResult) -> str:
    text = result.error or "unknown_error"
    if result.description:
        text += f": {result.description[:200]}"
    return text


def _event(
    key: TokenKey,
    kind: Literal["refreshed", "status_changed"],
    status: str,
    previous: str | None,
    error: str | None,
    at: datetime,
) -> ConnectionEvent:
    return ConnectionEvent(
        kind,
        key.provider,
        key.workspace_id,
        key.actor_id,
        str(status),
        None if previous is None else str(previous),
        error,
        at,
    )
