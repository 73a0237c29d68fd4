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

import dataclasses
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
from oauthvault.vault.flows import VaultCore, mark_locked_undecryptable
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
    """True when the access token stays valid for at least ``min_ttl`` seconds
    (:meth:`TokenSet.has_left`; the rule a read applies is :meth:`TokenSet.lasts`)."""
    return tokens.has_left(min_ttl, now)


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
    # A status (needs_reauth, degraded) is worth a short retry only: the outcome is
    # reported to the caller either way.
    status_save_window: float = 1.0

    def lease_seconds(self, policy: RetryPolicy) -> float:
        """The lease: provider discovery, every grant attempt with its backoff, then the
        save window."""
        grants = policy.attempts * (self.grant_timeout + policy.max_delay)
        return self.grant_timeout + grants + self.save_window


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
    # Waiting is bounded by each lease seen (counted in polls too, so a clock that stands
    # still cannot make it endless); a live lease is never taken over.
    watched: RefreshLease | None = None
    polls_left = 0
    now = core.clock()
    while True:
        state: RowState = yield LockRow(key)
        row, status, lease = state.row, state.status, state.lease
        if row is None:
            yield CommitLock()
            raise TokenNotFound(f"no tokens stored for {key.provider}/{key.workspace_id}")
        try:
            current = open_row(core.keyring, key, row)
        except DecryptionError:
            if core.keyring.has_key(row.key_id):
                yield from mark_locked_undecryptable(key, status, core.clock())
            else:
                yield CommitLock()
            raise
        now = core.clock()
        refreshed_meanwhile = seen is not None and current.access_token != seen.access_token
        if (refreshed_meanwhile and current.has_left(1, now)) or (
            not force and current.lasts(min_ttl, now)
        ):
            yield CommitLock()
            return current
        if lease is not None and lease.owner != owner and lease.until > now:
            if lease != watched:
                watched = lease
                remaining = (lease.until - now).total_seconds()
                polls_left = math.ceil(remaining / timing.poll_interval) + 1
            yield CommitLock()
            if polls_left <= 0:
                raise ProviderError(
                    "temporarily_unavailable", "another process is refreshing this connection"
                )
            polls_left -= 1
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
    note = None
    if abandoned is not None:  # recorded on the row in the same transaction as the takeover
        note = f"a refresh by {abandoned.owner} ended without saving its result"
        yield UpdateLocked(str(status), note)
    until = now + timedelta(seconds=timing.lease_seconds(policy))
    leased: int = yield TakeLease(key, RefreshLease(owner, until))
    yield CommitLock()
    if note is not None:
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
            save = RefreshSave(leased, owner, ConnectionStatus.ACTIVE, None, now)
            try:
                saved = yield from _save(core, key, sealed, save, until, timing.save_window)
            except StorageUnavailable as save_error:
                lost = f"the new tokens could not be saved: {save_error}"
                logger.error("refresh of %s: %s", key, lost)
                yield Emit(_event(key, "refresh_lost", str(status), status, lost, now))
                raise StorageUnavailable(
                    f"refreshed {key.provider}/{key.workspace_id}/{key.actor_id} but could not "
                    f"save the new tokens for {timing.save_window:g} s: {save_error}"
                ) from None
            if saved is None:  # written since by someone else (a reconnect): theirs stands
                stored = yield from _stored(core, key)
                yield from core.cache_tokens(key, stored, now)
                return stored
            new = dataclasses.replace(new, version=saved)
            yield from core.cache_tokens(key, new, now)
            if status != ConnectionStatus.ACTIVE:
                yield Emit(_event(key, "status_changed", "active", status, None, now))
            yield Emit(_event(key, "refreshed", "active", status, None, now))
            return new

    error = _describe(result) + (f" (after {note})" if note else "")
    new_status = (
        ConnectionStatus.NEEDS_REAUTH if result.outcome == "reauth" else ConnectionStatus.DEGRADED
    )
    save = RefreshSave(leased, owner, new_status, error, None)
    try:
        saved = yield from _save(core, key, None, save, until, timing.status_save_window)
    except StorageUnavailable as failure:
        saved = None
        logger.warning("refresh of %s: could not record %s: %s", key, new_status, failure)
    if saved is not None and new_status != status:
        yield Emit(_event(key, "status_changed", new_status, status, error, now))
    if result.outcome == "reauth":
        raise ReauthorizationRequired(result.error or "invalid_grant", result.description)
    left = current.seconds_left(now)
    if result.outcome == "transient" and left is not None and left > 0:
        logger.warning("refresh of %s failed (%s); serving the current token", key, error)
        return current
    raise ProviderError(result.error or "temporarily_unavailable", result.description)


def _save(
    core: VaultCore,
    key: TokenKey,
    row: SealedRow | None,
    save: RefreshSave,
    lease_until: datetime,
    window: float,
) -> Generator[Step, Any, int | None]:
    """Save a refresh's outcome, retrying while the database is unavailable: the new
    version, or ``None`` when the guard failed. The last ``StorageUnavailable`` is raised
    once ``window`` seconds have passed (by the clock, each attempt's own wait included),
    and never after the lease ends, when another refresher may take over."""
    deadline = min(core.clock() + timedelta(seconds=window), lease_until)
    delay, paused = 0.05, 0.0
    while True:
        try:
            saved: int | None = yield SaveRefreshed(key, row, save)
        except StorageUnavailable:
            # The pauses alone also end it: a clock that stands still cannot make it endless.
            left = min((deadline - core.clock()).total_seconds(), window - paused)
            if left <= 0:
                raise
            yield Pause(min(delay, left))
            paused += min(delay, left)
            delay = min(delay * 2, 0.5)
        else:
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
