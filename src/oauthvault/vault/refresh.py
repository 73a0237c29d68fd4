"""Refreshing a connection exactly once, however many workers ask at the same moment, and
without losing what the provider sent when the database blinks.

1. **Decide under the row lock.** The row is locked (``SELECT … FOR UPDATE``; Redis may be
   down), re-read and decided on: a token fresh enough, or one another worker has just
   refreshed, is returned as is.
2. **Lease, then call.** Otherwise a lease (owner, until when) is written on the row and
   committed *before* the provider is called, and the lock is released. Every other
   refresher that finds a live lease waits for its result (polling) instead of sending the
   same refresh token: even if the leaseholder's connection, or its whole process, is
   gone. The lease lasts as long as the grant may take plus the save window below.
3. **Save what the provider sent.** New tokens are written in one guarded statement (the
   row is still at the version this refresh read, or still leased to it; nothing newer is
   overwritten). When that fails because the database is away, the tokens stay in memory
   and the save is retried with backoff, on fresh connections, for ``save_window``
   seconds. Only if the database stays away that long are they lost; then a
   ``refresh_lost`` event is emitted and ``StorageUnavailable`` raised, and the lease left
   on the row tells the next refresher (``refresh_abandoned``, ``last_error``).

Failures are classified: ``invalid_grant`` and kin mark the connection ``needs_reauth``;
timeouts, 5xx and 429 are retried a bounded number of times, then mark it ``degraded``
while its current token is served for as long as it stays valid. A request that may have
reached a rotating provider (a read timeout) is never retried with the old refresh token.

The window that remains: a process that dies after its request may have reached the
provider and before the save (killed, or the database away for the whole save window)
loses a rotated refresh token. The lease keeps anyone from reusing it until the lease
ends; then the next refresh tries the stored token and, on a provider with reuse
detection, finds the grant revoked (``needs_reauth``).
"""

from __future__ import annotations

import logging
import math
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
    StorageUnavailable,
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
from oauthvault.storage.base import RefreshLease, RefreshSave
from oauthvault.vault.flows import VaultCore
from oauthvault.vault.steps import (
    CommitLock,
    Emit,
    LockRow,
    Pause,
    ReadRow,
    RefreshGrant,
    RowState,
    SaveRefreshed,
    Step,
    TakeLease,
    UpdateLocked,
)

__all__ = [
    "RefreshFlow",
    "RefreshTiming",
    "RetryPolicy",
    "is_fresh",
    "merge_answer",
    "refresh_flow",
]

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
    return TokenSet(access, refresh, expires_at, scope, merged, credentials, now)  # type: ignore[arg-type]


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


@dataclass(frozen=True, slots=True)
class RefreshTiming:
    """How long a refresh may take: one provider call (``grant_timeout``), the save retries
    (``save_window``), and how often a waiter looks at another refresher's lease."""

    grant_timeout: float = 10.0
    save_window: float = 30.0
    poll_interval: float = 0.1
    first_save_delay: float = 0.05
    max_save_delay: float = 0.5
    # A status (needs_reauth, degraded) is worth a short retry only: the outcome is
    # reported to the caller either way.
    status_save_window: float = 1.0

    def lease_seconds(self, policy: RetryPolicy) -> float:
        """The lease: every grant attempt with its backoff, then the save window."""
        return policy.attempts * (self.grant_timeout + policy.max_delay) + self.save_window

    def save_delays(self, window: float) -> list[float]:
        """The pauses between save attempts: doubling, capped, summing to ``window``."""
        delays: list[float] = []
        delay, total = self.first_save_delay, 0.0
        while total < window:
            delays.append(min(delay, window - total))
            total += delays[-1]
            delay = min(delay * 2, self.max_save_delay)
        return delays


def refresh_flow(
    core: VaultCore,
    key: TokenKey,
    *,
    min_ttl: float,
    force: bool,
    seen: TokenSet | None,
    policy: RetryPolicy,
    timing: RefreshTiming,
    owner: str,
) -> RefreshFlow:
    """Lock and decide; wait for another refresher's lease, or take the lease; refresh at
    most once; save (retrying while the database is away); then update the cache."""
    polls_left: int | None = None
    now = core.clock()
    while True:
        state: RowState = yield LockRow(key)
        row, status, lease = state.row, state.status, state.lease
        if row is None:
            yield CommitLock()
            raise TokenNotFound(f"no tokens stored for {key.provider}/{key.workspace_id}")
        current = open_row(core.keyring, key, row)
        now = core.clock()
        refreshed_meanwhile = seen is not None and current.access_token != seen.access_token
        if (refreshed_meanwhile and is_fresh(current, now, 1)) or (
            not force and is_fresh(current, now, current.needed_ttl(min_ttl))
        ):
            yield CommitLock()
            return current
        leased_elsewhere = lease is not None and lease.owner != owner and lease.until > now
        if leased_elsewhere and polls_left != 0:
            assert lease is not None  # noqa: S101 - leased_elsewhere says so
            if polls_left is None:  # bounded by the lease even if the clock stood still
                polls_left = math.ceil((lease.until - now).total_seconds() / timing.poll_interval)
            polls_left -= 1
            yield CommitLock()
            yield Pause(timing.poll_interval)
            continue
        break

    if status == ConnectionStatus.NEEDS_REAUTH:
        yield CommitLock()
        raise ReauthorizationRequired("invalid_grant", f"the connection is {status}")
    grant_with = current.refresh_token
    if current.client_credentials is not None:
        grant_with = ""  # a client-credentials grant: the credentials go in the step
    elif grant_with is None:
        yield UpdateLocked(ConnectionStatus.NEEDS_REAUTH, "no_refresh_token")
        yield CommitLock()
        if status != ConnectionStatus.NEEDS_REAUTH:
            reason = "no_refresh_token"
            yield Emit(_event(key, "status_changed", "needs_reauth", status, reason, now))
        raise ReauthorizationRequired("invalid_grant", "no refresh token is stored")

    abandoned = lease if lease is not None and lease.owner != owner else None
    yield TakeLease(RefreshLease(owner, now + timedelta(seconds=timing.lease_seconds(policy))))
    yield CommitLock()
    note = None
    if abandoned is not None:
        note = f"a refresh by {abandoned.owner} ended without saving its result"
        logger.warning("refresh of %s: %s; the stored refresh token may be used", key, note)
        yield Emit(_event(key, "refresh_abandoned", str(status), status, note, now))

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
    now = core.clock()
    if result.outcome == "ok" and result.token is not None:
        try:
            new = merge_answer(current, result.token, now, result.params)
        except ValueError:
            result = GrantResult("transient", error="malformed_answer")
        else:
            response = _merged_response(kept, result.response)
            sealed = seal_row(core.keyring, key, new, response)
            save = RefreshSave(row.version, owner, ConnectionStatus.ACTIVE, None, now)
            try:
                saved = yield from _save(key, sealed, save, timing.save_delays(timing.save_window))
            except StorageUnavailable as save_error:
                lost = f"the new tokens could not be saved: {save_error}"
                logger.error("refresh of %s: %s", key, lost)
                yield Emit(_event(key, "refresh_lost", str(status), status, lost, now))
                raise StorageUnavailable(
                    f"refreshed {key.provider}/{key.workspace_id}/{key.actor_id} but could not "
                    f"save the new tokens for {timing.save_window:g} s: {save_error}"
                ) from None
            if not saved:  # written since by someone else (a reconnect): theirs stands
                return (yield from _stored(core, key))
            yield from core.cache_tokens(key, new, now)
            if status != ConnectionStatus.ACTIVE:
                yield Emit(_event(key, "status_changed", "active", status, None, now))
            yield Emit(_event(key, "refreshed", "active", status, None, now))
            return new

    error = _describe(result) + (f" (after {note})" if note else "")
    new_status = (
        ConnectionStatus.NEEDS_REAUTH if result.outcome == "reauth" else ConnectionStatus.DEGRADED
    )
    save = RefreshSave(row.version, owner, new_status, error, None)
    try:
        saved = yield from _save(key, None, save, timing.save_delays(timing.status_save_window))
    except StorageUnavailable as failure:
        saved = False
        logger.warning("refresh of %s: could not record %s: %s", key, new_status, failure)
    if saved and new_status != status:
        yield Emit(_event(key, "status_changed", new_status, status, error, now))
    if result.outcome == "reauth":
        raise ReauthorizationRequired(result.error or "invalid_grant", result.description)
    left = current.seconds_left(now)
    if result.outcome == "transient" and left is not None and left > 0:
        logger.warning("refresh of %s failed (%s); serving the current token", key, error)
        return current
    raise ProviderError(result.error or "temporarily_unavailable", result.description)


def _save(
    key: TokenKey, row: SealedRow | None, save: RefreshSave, delays: list[float]
) -> Generator[Step, Any, bool]:
    """Save a refresh's outcome, retrying while the database is unavailable; the last
    ``StorageUnavailable`` is raised once ``delays`` are used up."""
    for delay in delays:
        try:
            saved: bool = yield SaveRefreshed(key, row, save)
        except StorageUnavailable:
            yield Pause(delay)
        else:
            return saved
    saved = yield SaveRefreshed(key, row, save)
    return saved


def _stored(core: VaultCore, key: TokenKey) -> Generator[Step, Any, TokenSet]:
    row = yield ReadRow(key)
    if row is None:
        raise TokenNotFound(f"no tokens stored for {key.provider}/{key.workspace_id}")
    return open_row(core.keyring, key, row)


def _describe(result: GrantResult) -> str:
    text = result.error or "unknown_error"
    if result.description:
        text += f": {result.description[:200]}"
    return text


def _event(
    key: TokenKey,
    kind: Literal["refreshed", "status_changed", "refresh_abandoned", "refresh_lost"],
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
