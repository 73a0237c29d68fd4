"""Refreshing a connection exactly once, however many workers ask at the same moment, and
without losing what the provider sent when the database blinks.

1. **Decide under the row lock.** The row is locked (``SELECT … FOR UPDATE``; Redis may be
   down), re-read and decided on: a token fresh enough, or one another worker has just
   refreshed, is returned as is.
2. **Lease, then call.** Otherwise a lease (owner, until when) is written on the row and
   committed *before* the provider is called, and the lock is released. Every other
   refresher that finds a live lease waits for its result (polling) instead of sending the
   same refresh token: even if the leaseholder's connection, or its whole process, is
   gone. A waiter never sends: when the lease it waited for ends without new tokens, the
   leaseholder's outcome stands (the current token while it is valid, else its error).
   Once sent, a refresh that may rotate the refresh token is waited for for the answer
   window: a timeout does not mean the provider did not get it. The lease lasts as long
   as the grant may take plus the save window below.
3. **Save what the provider sent.** New tokens are written in one guarded statement (the
   row is still at the version this refresh read, or still leased to it; nothing newer is
   overwritten). When that fails because the database is away, the tokens stay in memory
   and the save is retried with backoff, on fresh connections, for ``save_window``
   seconds. Only if the database stays away that long are they lost; then a
   ``refresh_lost`` event is emitted and ``StorageUnavailable`` raised, and the lease left
   on the row tells the next refresher (``refresh_abandoned``, ``last_error``).

Failures are classified: ``invalid_grant`` and kin mark the connection ``needs_reauth``;
the provider refusing the app's own client (``invalid_client``, ``unauthorized_client``)
raises ``ClientRejected``; timeouts, 5xx and 429 are retried a bounded number of times,
then mark it ``degraded`` while its current token is served for as long as it stays
valid. A request that may have reached a provider that rotates refresh tokens (or may:
unless its entry says they are static) is never retried with the old refresh token; when
its answer does not come in the answer window, ``last_error`` says so, with the time, and
the next refresh (one, after the lease) sends the stored token once.

The windows that remain: a process that dies after its request may have reached the
provider and before the save (killed, or the database away for the whole save window)
loses a rotated refresh token; so does a request the provider answers only after the
answer window (the answer has nowhere to go). The lease keeps anyone from reusing it
until the lease ends; then the next refresh tries the stored token and, on a provider
with reuse detection, finds the grant revoked (``needs_reauth``, with ``last_error``
naming the earlier unanswered refresh).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Generator, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from oauthvault.crypto.sealing import SealedRow, open_response, seal_row
from oauthvault.errors import (
    ClientRejected,
    DecryptionError,
    ProviderError,
    ReauthorizationRequired,
    StorageUnavailable,
    TokenNotFound,
    WrongCredentialKind,
)
from oauthvault.models import ConnectionEvent, ConnectionStatus, TokenKey, TokenSet
from oauthvault.oauth.refresh_grant import GrantResult
from oauthvault.oauth.token_request import CLIENT_REFUSALS, is_client_refusal
from oauthvault.storage.base import RefreshLease, RefreshSave
from oauthvault.vault.flows import VaultCore, mark_locked_undecryptable
from oauthvault.vault.refresh_policy import (
    LeaseWait,
    RefreshTiming,
    RetryPolicy,
    answered_tokens,
    describe_failure,
    merge_answer,
    merged_response,
)
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

# RetryPolicy, RefreshTiming and merge_answer live in refresh_policy; they are imported
# from here too, as before. Freshness is TokenSet.lasts / TokenSet.has_left.
__all__ = [
    "UNANSWERED",
    "RefreshFlow",
    "RefreshTiming",
    "Refreshable",
    "RetryPolicy",
    "TakenLease",
    "decide_under_lock",
    "failure_note",
    "make_grant",
    "merge_answer",
    "record_failure",
    "refresh_flow",
    "save_refreshed",
    "take_lease",
]

RefreshFlow = Generator[Step, Any, TokenSet]

logger = logging.getLogger("oauthvault.refresh")


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
    """Refresh ``key`` at most once (see the module): decide under the row lock, waiting
    for another refresher's lease; take the lease, then make the grant; save what the
    provider sent (retrying while the database is away) and cache it, or record the
    failure."""
    # 1. Decide under the row lock.
    decided = yield from decide_under_lock(
        core, key, min_ttl=min_ttl, force=force, seen=seen, owner=owner, timing=timing
    )
    if isinstance(decided, TokenSet):  # fresh enough, or refreshed meanwhile by another
        return decided
    # 2. Lease, then call.
    lease = yield from take_lease(key, decided, owner, timing.lease_seconds(policy))
    kept = _kept_response(core, key, decided.row)  # decrypted once, for the grant and the merge
    result = yield from make_grant(key, decided, kept, policy)
    # 3. Save what the provider sent, or record the failure.
    now = core.clock()
    new, result = answered_tokens(decided.current, result, now)
    if new is None:
        return (yield from record_failure(core, key, decided, lease, result, now, timing))
    response = merged_response(kept, result.response)
    return (yield from save_refreshed(core, key, decided, lease, new, response, now, timing))


@dataclass(frozen=True, slots=True)
class Refreshable:
    """What :func:`decide_under_lock` decided to refresh, the row still locked: the row as
    read, its tokens, status and lease (none, this refresher's, or one that has ended),
    and when the decision was taken."""

    row: SealedRow
    current: TokenSet
    status: str | None
    lease: RefreshLease | None
    now: datetime
    last_error: str | None = None
    forced: bool = False

    @property
    def grant_with(self) -> str:
        """The refresh token to send; empty for a client-credentials connection (its
        credentials go in the grant step instead)."""
        if self.current.client_credentials is not None or self.current.credentials is not None:
            return ""
        return self.current.refresh_token or ""


@dataclass(frozen=True, slots=True)
class TakenLease:
    """The lease :func:`take_lease` wrote: the row's version with it (the save is guarded
    by it), who holds it and until when, and the note on the abandoned lease it replaced."""

    version: int
    owner: str
    until: datetime
    note: str | None = None


def decide_under_lock(
    core: VaultCore,
    key: TokenKey,
    *,
    min_ttl: float,
    force: bool,
    seen: TokenSet | None,
    owner: str,
    timing: RefreshTiming,
) -> Generator[Step, Any, TokenSet | Refreshable]:
    """Step 1: lock the row, read it and decide. Returns the stored tokens (lock released)
    when they are fresh enough or another refresher has just renewed them, waiting for
    another's live lease first; otherwise a :class:`Refreshable`, the row still locked.
    A refresher that waited for another's lease never sends a grant of its own unless
    that lease ran out (its holder gone): the holder's outcome stands.

    Raises:
        TokenNotFound: nothing is stored.
        DecryptionError: the row does not decrypt (marked ``undecryptable`` when it is
            sealed with a key this process holds).
        ReauthorizationRequired: the connection needs a reconnect, or has no refresh token.
        ProviderError: another refresher's lease outlasted the wait for it, or the refresh
            waited for failed and the current token has expired (``ClientRejected`` when
            the provider refused the app's client).
    """
    wait = LeaseWait()
    while True:
        state: RowState = yield LockRow(key)
        row, current = yield from _open_locked(core, key, state)
        now = core.clock()
        refreshed_meanwhile = seen is not None and current.access_token != seen.access_token
        if (refreshed_meanwhile and current.has_left(1, now)) or (
            not force and current.lasts(min_ttl, now)
        ):
            yield CommitLock()
            return current
        lease = state.lease
        if lease is None and wait.watched is not None:
            # The refresh waited for ended without new tokens: its outcome stands.
            yield from _refuse_unrefreshable(key, state.status, current, now)
            yield CommitLock()
            return _after_failed_refresh(key, current, state.last_error, now)
        if lease is None or lease.owner == owner or lease.until <= now:
            break
        yield CommitLock()
        if not wait.another_poll(lease, now, timing.poll_interval):
            raise ProviderError(
                "temporarily_unavailable", "another process is refreshing this connection"
            )
        yield Pause(timing.poll_interval)
    yield from _refuse_unrefreshable(key, state.status, current, now)
    return Refreshable(row, current, state.status, lease, now, state.last_error, force)


def _after_failed_refresh(
    key: TokenKey, current: TokenSet, last_error: str | None, now: datetime
) -> TokenSet:
    """What a waiter answers when the refresh it waited for ended without new tokens: the
    current token while it is valid, else the failure that refresh recorded."""
    if current.has_left(1, now):
        if last_error is not None:
            logger.warning("refresh of %s by another caller failed; serving the current token", key)
        return current
    code, _, description = (last_error or "").partition(": ")
    if code in CLIENT_REFUSALS:
        raise ClientRejected(code, description or None)
    raise ProviderError(
        "temporarily_unavailable",
        f"the refresh another caller made failed: {last_error or 'no new tokens'}",
    )


def _open_locked(
    core: VaultCore, key: TokenKey, state: RowState
) -> Generator[Step, Any, tuple[SealedRow, TokenSet]]:
    """The locked row and its tokens; the lock is released before anything is raised."""
    row = state.row
    if row is None:
        yield CommitLock()
        raise TokenNotFound(f"no tokens stored for {key.provider}/{key.workspace_id}")
    try:
        return row, core.open_row(key, row)
    except DecryptionError:
        if core.keyring.has_key(row.key_id):
            yield from mark_locked_undecryptable(key, state.status, core.clock())
        else:
            yield CommitLock()
        raise


def _refuse_unrefreshable(
    key: TokenKey, status: str | None, current: TokenSet, now: datetime
) -> Generator[Step, Any, None]:
    """Release the lock and raise ``ReauthorizationRequired`` when the connection cannot be
    refreshed: it needs a reconnect already, or holds no refresh token (then marked so)."""
    if status == ConnectionStatus.NEEDS_REAUTH:
        yield CommitLock()
        raise ReauthorizationRequired("invalid_grant", f"the connection is {status}")
    fields = current.credentials
    if fields is not None and fields.static:
        yield CommitLock()
        raise WrongCredentialKind(fields.kind, f"an {fields.kind} credential is not refreshed")
    if fields is None and current.client_credentials is None and current.refresh_token is None:
        reason = "no_refresh_token"
        yield UpdateLocked(ConnectionStatus.NEEDS_REAUTH, reason)
        yield CommitLock()
        yield Emit(_event(key, "status_changed", "needs_reauth", status, reason, now))
        raise ReauthorizationRequired("invalid_grant", "no refresh token is stored")


def take_lease(
    key: TokenKey, decided: Refreshable, owner: str, seconds: float
) -> Generator[Step, Any, TakenLease]:
    """Step 2, before the provider is called: lease the locked row to ``owner`` for
    ``seconds`` and commit, releasing the lock. An abandoned lease it replaces (another
    refresher's, ended) is noted on the row in the same transaction, logged and emitted
    (``refresh_abandoned``)."""
    abandoned = (
        decided.lease if decided.lease is not None and decided.lease.owner != owner else None
    )
    note = None
    if abandoned is not None:  # recorded on the row in the same transaction as the takeover
        note = f"a refresh by {abandoned.owner} ended without saving its result"
        yield UpdateLocked(str(decided.status), note)
    until = decided.now + timedelta(seconds=seconds)
    leased: int = yield TakeLease(key, RefreshLease(owner, until))
    yield CommitLock()
    if note is not None:
        status = decided.status
        logger.warning("refresh of %s: %s; the stored refresh token may be used", key, note)
        yield Emit(_event(key, "refresh_abandoned", str(status), status, note, decided.now))
    return TakenLease(leased, owner, until, note)


def make_grant(
    key: TokenKey,
    decided: Refreshable,
    kept: Mapping[str, Any] | None,
    policy: RetryPolicy,
) -> Generator[Step, Any, GrantResult]:
    """Step 2, the call: the refresh grant (or client-credentials grant), retried with
    backoff while it fails transiently and a retry is safe (never after a request that may
    have reached the provider); the last result."""
    current = decided.current
    result = GrantResult("transient", error="not_attempted")
    for attempt in range(policy.attempts):
        result = yield RefreshGrant(
            key.provider,
            decided.grant_with,
            current.params,
            kept,
            current.client_credentials,
            current.scope,
            current.credentials,
        )
        if result.outcome != "transient" or not result.retry_safe:
            break
        if attempt + 1 < policy.attempts:
            yield Pause(policy.delay(attempt))
    return result


def save_refreshed(
    core: VaultCore,
    key: TokenKey,
    decided: Refreshable,
    lease: TakenLease,
    new: TokenSet,
    response: Mapping[str, Any] | None,
    now: datetime,
    timing: RefreshTiming,
) -> Generator[Step, Any, TokenSet]:
    """Step 3: save the new tokens under the lease's guard, retrying for ``save_window``
    while the database is away, then cache them and emit ``refreshed`` (and
    ``status_changed`` when the connection was not active). Returns them, or what someone
    else wrote since (a reconnect: theirs stands).

    Raises:
        StorageUnavailable: the tokens could not be saved in the window (``refresh_lost``
            is emitted first).
    """
    status = decided.status
    sealed = seal_row(core.keyring, key, new, response)
    save = RefreshSave(lease.version, lease.owner, ConnectionStatus.ACTIVE, None, now)
    try:
        saved = yield from _save(core, key, sealed, save, lease.until, timing.save_window)
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


def record_failure(
    core: VaultCore,
    key: TokenKey,
    decided: Refreshable,
    lease: TakenLease,
    result: GrantResult,
    now: datetime,
    timing: RefreshTiming,
) -> Generator[Step, Any, TokenSet]:
    """Step 3 for a failed grant: record it on the row (``needs_reauth`` for a dead grant,
    else ``degraded``; a short retry only, for ``status_save_window``) and in the log (at
    WARNING), emitting ``status_changed`` when it is news. Returns the current token while
    it is still valid after any failure but a dead grant (or, for a forced refresh, a
    refusal of the app's client: the caller asked for a new token and is told why not).

    Raises:
        ReauthorizationRequired: the grant is gone.
        ClientRejected: the provider refused the app's client, the current token expired.
        ProviderError: any other failure, the current token expired.
    """
    status = decided.status
    error = failure_note(decided, result, timing) + (f" (after {lease.note})" if lease.note else "")
    new_status = (
        ConnectionStatus.NEEDS_REAUTH if result.outcome == "reauth" else ConnectionStatus.DEGRADED
    )
    logger.warning("refresh of %s failed, now %s: %s", key, new_status, error)
    save = RefreshSave(lease.version, lease.owner, new_status, error, None)
    try:
        saved = yield from _save(core, key, None, save, lease.until, timing.status_save_window)
    except StorageUnavailable as failure:
        saved = None
        logger.warning("refresh of %s: could not record %s: %s", key, new_status, failure)
    if saved is not None and new_status != status:
        yield Emit(_event(key, "status_changed", new_status, status, error, now))
    if result.outcome == "reauth":
        raise ReauthorizationRequired(result.error or "invalid_grant", result.description)
    current = decided.current
    refused = is_client_refusal(result)
    if current.has_left(1, now) and not (refused and decided.forced):
        logger.warning("refresh of %s: serving the current token while it lasts", key)
        return current
    if refused:
        raise ClientRejected(result.error or "invalid_client", result.description)
    if not result.retry_safe:
        raise ProviderError(result.error or "no_answer", error)
    raise ProviderError(result.error or "temporarily_unavailable", result.description)


#: How ``last_error`` starts when a refresh that may have rotated the refresh token got no
#: answer: the next failure of the grant names it.
UNANSWERED = "no answer to the refresh sent at"


def failure_note(decided: Refreshable, result: GrantResult, timing: RefreshTiming) -> str:
    """The ``last_error`` a failed grant records (pure): the provider's error and
    description; for a request that may have reached the provider and got no answer, when
    it was sent and what that means; for a dead grant after such a request, that the
    rotation was probably lost to that slow answer."""
    if result.outcome == "transient" and not result.retry_safe:
        return (
            f"{UNANSWERED} {decided.now:%Y-%m-%d %H:%M:%S} UTC within "
            f"{timing.answer_window:g} s ({result.description or result.error}): the provider "
            "may have rotated the refresh token; the next refresh sends the stored one once"
        )
    note = describe_failure(result)
    earlier = decided.last_error
    if result.outcome == "reauth" and earlier is not None and earlier.startswith(UNANSWERED):
        sent = earlier[len(UNANSWERED) :].split(" within ", 1)[0].strip()
        note += (
            f" (the refresh sent at {sent} got no answer: a rotation was probably lost to "
            "that slow answer, and the provider retired the stored refresh token)"
        )
    return note


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


def _kept_response(core: VaultCore, key: TokenKey, row: SealedRow) -> Mapping[str, Any] | None:
    """The token answer kept with the row; ``None`` when it does not decrypt."""
    try:
        return open_response(core.keyring, key, row)
    except DecryptionError:
        return None


def _stored(core: VaultCore, key: TokenKey) -> Generator[Step, Any, TokenSet]:
    row = yield ReadRow(key)
    if row is None:
        raise TokenNotFound(f"no tokens stored for {key.provider}/{key.workspace_id}")
    return core.open_row(key, row)


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
