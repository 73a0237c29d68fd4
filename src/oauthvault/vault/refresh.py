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
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from oauthvault.crypto.sealing import SealedRow, open_response, open_row, seal_row
from oauthvault.errors import (
    DecryptionError,
    ProviderError,
    ReauthorizationRequired,
    TokenNotFound,
)
from oauthvault.models import (
    ConnectionEvent,
    ConnectionStatus,
    TokenKey,
    TokenSet,
    validate_tokens,
)
from oauthvault.oauth.refresh_grant import GrantResult
from oauthvault.vault.flows import VaultCore
from oauthvault.vault.steps import (
    CommitLock,
    Emit,
    LockRow,
    Pause,
    RefreshGrant,
    Step,
    UpdateLocked,
)

__all__ = ["RefreshFlow", "RetryPolicy", "is_fresh", "merge_answer", "refresh_flow"]

RefreshFlow = Generator[Step, Any, TokenSet]

logger = logging.getLogger("oauthvault.refresh")


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Bounded retries with exponential backoff and full jitter."""

    attempts: int = 3
    base_delay: float = 0.2
    max_delay: float = 2.0

    def delay(self, attempt: int) -> float:
        ceiling = min(self.max_delay, self.base_delay * (2**attempt))
        return random.uniform(ceiling / 2, ceiling)  # noqa: S311 - jitter, not a secret


def is_fresh(tokens: TokenSet, now: datetime, min_ttl: float) -> bool:
    """True when the access token stays valid for at least ``min_ttl`` seconds."""
    left = tokens.seconds_left(now)
    return left is None or left >= min_ttl


def merge_answer(
    current: TokenSet,
    answer: Mapping[str, Any],
    now: datetime,
    params: Mapping[str, str] | None = None,
) -> TokenSet:
    """The new token set: the new access token, the new refresh token when the provider
    rotated it, the old one when it did not, the connection parameters updated with those
    the answer carried. Raises ``InvalidInput`` for a malformed answer, so nothing stored
    is ever overwritten by one."""
    access = answer.get("access_token")
    refresh = answer.get("refresh_token") or current.refresh_token
    expires_in = answer.get("expires_in")
    if isinstance(expires_in, str) and expires_in.isdigit():
        expires_in = int(expires_in)
    scope = answer.get("scope")
    scope = scope if isinstance(scope, str) else current.scope
    validate_tokens(access, refresh, expires_in, scope)
    expires_at = None if expires_in is None else now + timedelta(seconds=expires_in)
    merged = {**current.params, **params} if params else current.params
    credentials = current.client_credentials
    return TokenSet(access, refresh, expires_at, scope, merged, credentials)  # type: ignore[arg-type]


def _kept_response(core: VaultCore, key: TokenKey, row: SealedRow) -> Mapping[str, Any] | None:
    try:
        return open_response(core.keyring, key, row)
    except DecryptionError:
        return None


def _merged_response(
    kept: Mapping[str, Any] | None, answer: Mapping[str, Any] | None
) -> Mapping[str, Any] | None:
    """The kept token answer: the refresh answer over the one kept before, so that what
    only the first answer held (a Slack team, an id_token) is not lost."""
    if answer is None:
        return kept
    return {**(kept or {}), **answer}


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

    def change(new_status: str, error: str | None) -> Generator[Step, Any, None]:
        yield UpdateLocked(None, new_status, error, None)
        yield CommitLock()
        if new_status != status:
            yield Emit(_event(key, "status_changed", new_status, status, error, now))

    if status == ConnectionStatus.NEEDS_REAUTH:
        yield CommitLock()
        raise ReauthorizationRequired("invalid_grant", f"the connection is {status}")
    grant_with = current.refresh_token
    if current.client_credentials is not None:
        grant_with = ""  # a client-credentials grant: the credentials go in the step
    elif grant_with is None:
        yield from change(ConnectionStatus.NEEDS_REAUTH, "no_refresh_token")
        raise ReauthorizationRequired("invalid_grant", "no refresh token is stored")

    kept = _kept_response(core, key, row)  # decrypted once, for the grant and the merge
    result = GrantResult("transient", error="not_attempted")
    for attempt in range(policy.attempts):
        result = yield RefreshGrant(
            key.provider,
            grant_with,
            current.params,
            kept,
            current.client_credentials,
            current.scope,
        )
        if result.outcome != "transient" or not result.retry_safe:
            break
        if attempt + 1 < policy.attempts:
            yield Pause(policy.delay(attempt))
    if result.outcome == "ok" and result.token is not None:
        try:
            new = merge_answer(current, result.token, now, result.params)
        except ValueError:
            result = GrantResult("transient", error="malformed_answer")
        else:
            response = _merged_response(kept, result.response)
            yield UpdateLocked(seal_row(core.keyring, key, new, response), "active", None, now)
            yield CommitLock()
            yield from core.cache_tokens(key, new, now)
            if status != ConnectionStatus.ACTIVE:
                yield Emit(_event(key, "status_changed", "active", status, None, now))
            yield Emit(_event(key, "refreshed", "active", status, None, now))
            return new
    error = _describe(result)
    if result.outcome == "reauth":
        yield from change(ConnectionStatus.NEEDS_REAUTH, error)
        raise ReauthorizationRequired(result.error or "invalid_grant", result.description)
    yield from change(ConnectionStatus.DEGRADED, error)
    left = current.seconds_left(now)
    if result.outcome == "transient" and left is not None and left > 0:
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
