"""The pure rules of a refresh (:mod:`oauthvault.vault.refresh`), no I/O: how often and
how long it retries (:class:`RetryPolicy`, :class:`RefreshTiming`), how long it waits for
another refresher's lease (:class:`LeaseWait`), and how a provider's answer becomes the new
token set (:func:`answered_tokens`, :func:`merge_answer`).
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from oauthvault.models import TokenSet, validate_tokens
from oauthvault.oauth.refresh_grant import GrantResult
from oauthvault.storage.base import RefreshLease

__all__ = [
    "LeaseWait",
    "RefreshTiming",
    "RetryPolicy",
    "answered_tokens",
    "describe_failure",
    "merge_answer",
    "merged_response",
]


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
class RefreshTiming:
    """How long a refresh may take: one provider call (``grant_timeout``), the wait for the
    answer to a refresh that may rotate the refresh token (``answer_window``), the save
    retries (``save_window``), and how often a waiter looks at another refresher's lease."""

    grant_timeout: float = 10.0
    save_window: float = 30.0
    poll_interval: float = 0.1
    # A status (needs_reauth, degraded) is worth a short retry only: the outcome is
    # reported to the caller either way.
    status_save_window: float = 1.0
    # Once sent, a refresh that may rotate the refresh token is waited for this long: a
    # second request with the same token while the first can still be answered would
    # look like reuse to the provider.
    answer_window: float = 60.0

    def lease_seconds(self, policy: RetryPolicy) -> float:
        """The lease: provider discovery, the grant attempts with their backoff (the last
        one waiting for its answer for the answer window), then the save window."""
        retries = (policy.attempts - 1) * (self.grant_timeout + policy.max_delay)
        last = max(self.grant_timeout, self.answer_window) + policy.max_delay
        return self.grant_timeout + retries + last + self.save_window


@dataclass(slots=True)
class LeaseWait:
    """How long a refresher waits for another's live lease (it is never taken over): as
    long as each lease seen lasts, counted in polls too, so that a clock that stands still
    cannot make the wait endless."""

    watched: RefreshLease | None = None
    polls_left: int = 0

    def another_poll(self, lease: RefreshLease, now: datetime, interval: float) -> bool:
        """Whether to look again after ``interval`` seconds; ``False``: stop waiting."""
        if lease != self.watched:
            self.watched = lease
            remaining = (lease.until - now).total_seconds()
            self.polls_left = math.ceil(remaining / interval) + 1
        if self.polls_left <= 0:
            return False
        self.polls_left -= 1
        return True


def answered_tokens(
    current: TokenSet, result: GrantResult, now: datetime
) -> tuple[TokenSet | None, GrantResult]:
    """The new tokens a grant brought (``None`` when it failed) and the result to record:
    a malformed answer counts as a transient failure, so nothing stored is overwritten."""
    if result.outcome != "ok" or result.token is None:
        return None, result
    try:
        return merge_answer(current, result.token, now, result.params), result
    except ValueError:
        return None, GrantResult("transient", error="malformed_answer")


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
    return TokenSet(
        access,  # type: ignore[arg-type]
        refresh,
        expires_at,
        scope,
        merged,
        current.client_credentials,
        now,
        credentials=current.credentials,
    )


def merged_response(
    kept: Mapping[str, Any] | None, answer: Mapping[str, Any] | None
) -> Mapping[str, Any] | None:
    """The kept token answer: the refresh answer over the one kept before, so that what
    only the first answer held (a Slack team, an id_token) is not lost."""
    if answer is None:
        return kept
    return {**(kept or {}), **answer}


def describe_failure(result: GrantResult) -> str:
    """A failed grant's error and description, cut short, for ``last_error``."""
    text = result.error or "unknown_error"
    if result.description:
        text += f": {result.description[:200]}"
    return text
