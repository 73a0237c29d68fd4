"""The refresh flow's pure parts: classification, merging answers, backoff."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from oauthvault import InvalidInput, TokenSet
from oauthvault.oauth.refresh_grant import classify_failure
from oauthvault.vault.refresh import RetryPolicy, merge_answer

NOW = datetime(2030, 1, 1, tzinfo=UTC)
CURRENT = TokenSet("old-access", "old-refresh", NOW + timedelta(seconds=30), "read")


@pytest.mark.parametrize(
    ("status", "error", "outcome"),
    [
        (400, "invalid_grant", "reauth"),
        (400, "unauthorized_client", "config"),
        (401, "invalid_client", "config"),
        (400, "invalid_request", "config"),
        (400, "something_new", "config"),
        (503, "temporarily_unavailable", "transient"),
        (500, None, "transient"),
        (429, "slow_down", "transient"),
        (None, None, "transient"),
    ],
)
def test_failures_are_classified(status, error, outcome):
    assert classify_failure(status, error, None, retry_safe=True).outcome == outcome


def test_a_request_that_may_have_arrived_is_not_retry_safe():
    result = classify_failure(None, "no_answer", "ReadTimeout", retry_safe=False)
    assert result.outcome == "transient" and not result.retry_safe


def test_a_rotated_refresh_token_replaces_the_old_one():
    merged = merge_answer(
        CURRENT, {"access_token": "new", "refresh_token": "rotated", "expires_in": 3600}, NOW
    )
    assert merged == TokenSet("new", "rotated", NOW + timedelta(hours=1), "read")


def test_without_a_new_refresh_token_the_old_one_is_kept():
    merged = merge_answer(
        CURRENT, {"access_token": "new", "expires_in": "60", "scope": "read write"}, NOW
    )
    assert merged.refresh_token == "old-refresh"
    assert merged.expires_at == NOW + timedelta(seconds=60)
    assert merged.scope == "read write"


@pytest.mark.parametrize(
    "answer",
    [
        {},
        {"access_token": ""},
        {"access_token": 42},
        {"access_token": "new", "expires_in": -5},
        {"access_token": "new", "expires_in": "soon"},
        {"access_token": "bad\nvalue"},
    ],
)
def test_a_malformed_answer_is_refused_so_nothing_is_overwritten(answer):
    with pytest.raises(InvalidInput):
        merge_answer(CURRENT, answer, NOW)


def test_freshness():
    assert CURRENT.has_left(30, NOW)
    assert not CURRENT.has_left(31, NOW)
    assert TokenSet("a", None, None, None).has_left(10_000, NOW)


def test_backoff_grows_with_jitter_and_a_ceiling():
    policy = RetryPolicy(base_delay=0.2, max_delay=1.0)
    for attempt, ceiling in ((0, 0.2), (1, 0.4), (2, 0.8), (5, 1.0)):
        for _ in range(50):
            assert ceiling / 2 <= policy.delay(attempt) <= ceiling


# --- the flow, driven by hand: the lease, the guarded save and its retries --------------

from oauthvault import ProviderError, StorageUnavailable  # noqa: E402
from oauthvault.crypto.keyring import KeyRing  # noqa: E402
from oauthvault.crypto.sealing import seal_row  # noqa: E402
from oauthvault.models import TokenKey  # noqa: E402
from oauthvault.oauth.refresh_grant import GrantResult  # noqa: E402
from oauthvault.storage.base import RefreshLease  # noqa: E402
from oauthvault.vault.flows import VaultCore  # noqa: E402
from oauthvault.vault.refresh import RefreshTiming, refresh_flow  # noqa: E402
from oauthvault.vault.steps import (  # noqa: E402
    CommitLock,
    Emit,
    LockRow,
    Pause,
    ReadRow,
    RefreshGrant,
    RowState,
    SaveRefreshed,
    TakeLease,
    UpdateLocked,
)

KEY = TokenKey("p", "ws", "u")
LEASED_AT = 7
RING = KeyRing.generate()
CORE = VaultCore(keyring=RING, clock=lambda: NOW, has_cache=False, default_cache_ttl=60)
EXPIRING = TokenSet("old-access", "old-refresh", NOW + timedelta(seconds=5), None)
ROW = seal_row(RING, KEY, EXPIRING)
NEW_ACCESS, ROTATED = "NEW-ACCESS-SECRET", "ROTATED-REFRESH-SECRET"
ANSWER = GrantResult(
    "ok", token={"access_token": NEW_ACCESS, "refresh_token": ROTATED, "expires_in": 60}
)


def start(**options):
    flow = refresh_flow(
        CORE,
        KEY,
        min_ttl=60,
        force=False,
        seen=EXPIRING,
        policy=RetryPolicy(attempts=1),
        timing=RefreshTiming(save_window=1.0, status_save_window=0.1),
        owner="me",
        **options,
    )
    return flow, next(flow)


def run_to_save(flow, step, lease=None):
    assert isinstance(step, LockRow)
    step = flow.send(RowState(ROW, "active", lease))
    assert isinstance(step, TakeLease) and step.lease.owner == "me"
    assert step.lease.until > NOW  # committed before the provider is called:
    assert isinstance(flow.send(LEASED_AT), CommitLock)
    step = flow.send(None)
    if isinstance(step, Emit):
        step = flow.send(None)
    assert isinstance(step, RefreshGrant)
    return flow.send(ANSWER)


def test_the_save_is_retried_while_the_database_is_away():
    flow, step = start()
    step = run_to_save(flow, step)
    pauses = 0
    for _ in range(3):
        assert isinstance(step, SaveRefreshed) and step.save.owner == "me"
        step = flow.throw(StorageUnavailable("down"))
        assert isinstance(step, Pause)
        pauses += 1
        step = flow.send(None)
    assert isinstance(step, SaveRefreshed)
    assert step.save.version == LEASED_AT  # guarded by the version it leased at
    step = flow.send(LEASED_AT + 1)
    kinds = []
    while True:
        assert isinstance(step, Emit)
        kinds.append(step.event.kind)
        try:
            step = flow.send(None)
        except StopIteration as done:
            assert done.value.access_token == NEW_ACCESS and done.value.refresh_token == ROTATED
            assert done.value.version == LEASED_AT + 1
            break
    assert kinds == ["refreshed"] and pauses == 3


def test_tokens_that_cannot_be_saved_in_the_window_are_reported():
    flow, step = start()
    step = run_to_save(flow, step)
    with pytest.raises(StorageUnavailable, match="could not save the new tokens"):
        while True:
            if isinstance(step, SaveRefreshed):
                step = flow.throw(StorageUnavailable("down"))
            elif isinstance(step, Emit):
                assert step.event.kind == "refresh_lost"
                assert ROTATED not in repr(step.event) and NEW_ACCESS not in repr(step.event)
                step = flow.send(None)
            else:
                assert isinstance(step, Pause)
                step = flow.send(None)


def test_a_live_lease_is_never_taken_over_even_when_waiting_runs_out():
    flow, step = start()
    for until in (NOW + timedelta(seconds=0.15), NOW + timedelta(seconds=0.25)):
        lease = RefreshLease("them", until)  # a second refresher follows the first
        step = flow.send(RowState(ROW, "active", lease)) if isinstance(step, LockRow) else step
        while isinstance(step, (CommitLock, Pause)):
            step = flow.send(None)
            if isinstance(step, LockRow):
                break
        assert not isinstance(step, TakeLease)
    with pytest.raises(ProviderError):  # the clock stood still: give up, never take over
        while True:
            step = flow.send(RowState(ROW, "active", lease) if isinstance(step, LockRow) else None)
            assert not isinstance(step, (TakeLease, RefreshGrant))


def test_a_live_lease_elsewhere_is_waited_for_not_duplicated():
    flow, step = start()
    theirs = RefreshLease("them", NOW + timedelta(seconds=30))
    step = flow.send(RowState(ROW, "active", theirs))
    assert isinstance(step, CommitLock)
    assert isinstance(flow.send(None), Pause)
    assert isinstance(flow.send(None), LockRow)  # looks again; no grant was asked for
    refreshed = seal_row(RING, KEY, TokenSet("theirs", "r9", NOW + timedelta(hours=1), None))
    assert isinstance(flow.send(RowState(refreshed, "active", None)), CommitLock)
    with pytest.raises(StopIteration) as done:
        flow.send(None)
    assert done.value.value.access_token == "theirs"


def test_an_expired_lease_is_taken_over_and_recorded():
    flow, step = start()
    stale = RefreshLease("them", NOW - timedelta(seconds=1))
    assert isinstance(step, LockRow)
    step = flow.send(RowState(ROW, "active", stale))
    assert isinstance(step, UpdateLocked) and "them" in (step.last_error or "")  # on the row
    step = flow.send(None)
    assert isinstance(step, TakeLease)
    assert isinstance(flow.send(LEASED_AT), CommitLock)
    step = flow.send(None)
    assert isinstance(step, Emit) and step.event.kind == "refresh_abandoned"
    assert "them" in (step.event.error or "")


def test_a_save_refused_by_the_guard_returns_what_was_written_since():
    flow, step = start()
    step = run_to_save(flow, step)
    assert isinstance(step, SaveRefreshed)
    assert isinstance(flow.send(None), ReadRow)  # someone reconnected meanwhile
    reconnected = seal_row(RING, KEY, TokenSet("reconnected", "rX", None, None))
    with pytest.raises(StopIteration) as done:
        flow.send(reconnected)
    assert done.value.value.access_token == "reconnected"


def test_short_lived_tokens_are_fresh_until_their_last_quarter():
    issued = NOW - timedelta(seconds=3)
    five_seconds = TokenSet("a", "r", issued + timedelta(seconds=5), None, issued_at=issued)
    assert five_seconds.needed_ttl(60) == 1.25
    assert five_seconds.has_left(five_seconds.needed_ttl(60), NOW)  # 2 s left of 5
    assert not five_seconds.has_left(five_seconds.needed_ttl(60), NOW + timedelta(seconds=1))
    hour = TokenSet("a", "r", NOW + timedelta(hours=1), None, issued_at=NOW)
    assert hour.needed_ttl(60) == 60  # long-lived: min_ttl as asked


# --- each step of the flow on its own ------------------------------------------------------

from oauthvault import ReauthorizationRequired, TokenNotFound  # noqa: E402
from oauthvault.models import ClientCredentials  # noqa: E402
from oauthvault.vault.refresh import (  # noqa: E402
    Refreshable,
    TakenLease,
    decide_under_lock,
    make_grant,
    record_failure,
    save_refreshed,
    take_lease,
)
from oauthvault.vault.refresh_policy import LeaseWait, answered_tokens  # noqa: E402
from oauthvault.vault.steps import RecordInvalidation, WriteCache  # noqa: E402

TIMING = RefreshTiming(save_window=1.0, status_save_window=0.1, poll_interval=0.1)
CACHED = VaultCore(keyring=RING, clock=lambda: NOW, has_cache=True, default_cache_ttl=60)


def drive(flow, *answers, steps=None):
    """Run a sub-flow on its own, sending ``answers`` in turn (``None`` once they run out;
    an exception is thrown in); returns its result. ``steps`` collects what it yielded."""
    steps = [] if steps is None else steps
    pending = list(answers)
    try:
        steps.append(next(flow))
        while True:
            answer = pending.pop(0) if pending else None
            if isinstance(answer, BaseException):
                steps.append(flow.throw(answer))
            else:
                steps.append(flow.send(answer))
    except StopIteration as done:
        return done.value


def decide(state, *more, force=False, seen=EXPIRING, steps=None):
    flow = decide_under_lock(
        CORE, KEY, min_ttl=60, force=force, seen=seen, owner="me", timing=TIMING
    )
    return drive(flow, state, *more, steps=steps)


def decided(tokens=EXPIRING, status="active", lease=None):
    return Refreshable(seal_row(RING, KEY, tokens), tokens, status, lease, NOW)


def kinds(steps):
    return [type(step).__name__ for step in steps]


def test_deciding_returns_tokens_fresh_enough_and_releases_the_lock():
    fresh = TokenSet("fresh", "r", NOW + timedelta(hours=1), None)
    steps = []
    found = decide(RowState(seal_row(RING, KEY, fresh), "active", None), steps=steps)
    assert found.access_token == "fresh" and kinds(steps) == ["LockRow", "CommitLock"]
    # forced: even a fresh token is refreshed, unless another has just renewed it
    refresh = decide(RowState(seal_row(RING, KEY, fresh), "active", None), force=True, seen=fresh)
    assert isinstance(refresh, Refreshable)


def test_deciding_to_refresh_keeps_the_row_locked():
    steps = []
    stale = RefreshLease("them", NOW - timedelta(seconds=1))
    found = decide(RowState(ROW, "degraded", stale), steps=steps)
    assert kinds(steps) == ["LockRow"]  # no CommitLock: the lease is taken under this lock
    assert isinstance(found, Refreshable)
    assert (found.current, found.status, found.lease, found.now) == (
        EXPIRING,
        "degraded",
        stale,
        NOW,
    )
    assert found.row == ROW and found.grant_with == "old-refresh"


def test_deciding_waits_for_a_live_lease_elsewhere_then_takes_what_it_left():
    theirs = RefreshLease("them", NOW + timedelta(seconds=30))
    renewed = seal_row(RING, KEY, TokenSet("theirs", "r9", NOW + timedelta(hours=1), None))
    steps = []
    found = decide(
        RowState(ROW, "active", theirs), None, None, RowState(renewed, "active", None), steps=steps
    )
    assert kinds(steps) == ["LockRow", "CommitLock", "Pause", "LockRow", "CommitLock"]
    assert found.access_token == "theirs"


def test_a_lease_is_waited_for_as_long_as_it_lasts_in_polls_when_the_clock_stands_still():
    wait = LeaseWait()
    lease = RefreshLease("them", NOW + timedelta(seconds=0.25))
    polls = 0
    while wait.another_poll(lease, NOW, 0.1):
        polls += 1
    assert polls == 4  # ceil(0.25 / 0.1) + 1
    assert wait.another_poll(RefreshLease("them", NOW + timedelta(seconds=0.1)), NOW, 0.1)


@pytest.mark.parametrize(
    ("row", "status", "error", "expected"),
    [
        (None, "active", TokenNotFound, ["LockRow", "CommitLock"]),
        (ROW, "needs_reauth", ReauthorizationRequired, ["LockRow", "CommitLock"]),
        (
            seal_row(RING, KEY, TokenSet("a", None, NOW, None)),
            "active",
            ReauthorizationRequired,
            ["LockRow", "UpdateLocked", "CommitLock", "Emit"],
        ),
    ],
)
def test_deciding_refuses_what_cannot_be_refreshed_after_releasing_the_lock(
    row, status, error, expected
):
    steps = []
    with pytest.raises(error):
        decide(RowState(row, status, None), steps=steps)
    assert kinds(steps) == expected


def test_a_client_credentials_connection_is_refreshed_without_a_refresh_token():
    tokens = TokenSet("a", None, NOW, None, client_credentials=ClientCredentials())
    found = decide(RowState(seal_row(RING, KEY, tokens), "active", None))
    assert isinstance(found, Refreshable) and found.grant_with == ""


def test_taking_the_lease_commits_it_before_any_call():
    steps = []
    lease = drive(take_lease(KEY, decided(), "me", 42.0), LEASED_AT, steps=steps)
    assert kinds(steps) == ["TakeLease", "CommitLock"]
    assert steps[0].lease == RefreshLease("me", NOW + timedelta(seconds=42))
    assert lease == TakenLease(LEASED_AT, "me", NOW + timedelta(seconds=42), None)
    mine = drive(take_lease(KEY, decided(lease=RefreshLease("me", NOW)), "me", 1.0), 3)
    assert mine.note is None  # its own earlier lease is not an abandoned one


def test_taking_over_an_abandoned_lease_notes_it_on_the_row_and_tells_the_application():
    steps = []
    stale = RefreshLease("them", NOW - timedelta(seconds=1))
    lease = drive(take_lease(KEY, decided(lease=stale), "me", 42.0), None, LEASED_AT, steps=steps)
    assert kinds(steps) == ["UpdateLocked", "TakeLease", "CommitLock", "Emit"]
    assert "them" in (steps[0].last_error or "") and steps[0].status == "active"
    assert steps[3].event.kind == "refresh_abandoned" and lease.note == steps[0].last_error


def test_the_grant_is_retried_only_while_a_retry_is_safe():
    policy = RetryPolicy(attempts=3, base_delay=0.01, max_delay=0.01)
    flaky = GrantResult("transient", error="http_503")
    steps = []
    answers = (flaky, None, flaky, None, flaky)  # the pauses are sent None
    result = drive(make_grant(KEY, decided(), None, policy), *answers, steps=steps)
    assert kinds(steps) == ["RefreshGrant", "Pause", "RefreshGrant", "Pause", "RefreshGrant"]
    assert steps[0].refresh_token == "old-refresh" and result is flaky  # the last answer
    maybe_arrived = GrantResult("transient", error="no_answer", retry_safe=False)
    steps = []
    assert drive(make_grant(KEY, decided(), None, policy), maybe_arrived, steps=steps) == (
        maybe_arrived
    )
    assert kinds(steps) == ["RefreshGrant"]  # never again with a maybe-retired token


def test_an_answer_that_is_not_tokens_counts_as_a_transient_failure():
    new, result = answered_tokens(EXPIRING, ANSWER, NOW)
    assert new is not None and new.access_token == NEW_ACCESS and result is ANSWER
    new, result = answered_tokens(EXPIRING, GrantResult("ok", token={"access_token": ""}), NOW)
    assert new is None and (result.outcome, result.error) == ("transient", "malformed_answer")
    failed = GrantResult("reauth", error="invalid_grant")
    assert answered_tokens(EXPIRING, failed, NOW) == (None, failed)


def test_saving_writes_under_the_lease_caches_and_tells_the_application():
    new = merge_answer(EXPIRING, ANSWER.token, NOW)
    lease = TakenLease(LEASED_AT, "me", NOW + timedelta(minutes=1))
    steps = []
    flow = save_refreshed(CACHED, KEY, decided(status="degraded"), lease, new, None, NOW, TIMING)
    saved = drive(flow, LEASED_AT + 1, True, steps=steps)
    assert kinds(steps) == ["SaveRefreshed", "WriteCache", "Emit", "Emit"]
    assert steps[0].save.version == LEASED_AT and steps[0].save.owner == "me"
    assert isinstance(steps[1], WriteCache) and steps[1].version == LEASED_AT + 1
    assert [step.event.kind for step in steps[2:]] == ["status_changed", "refreshed"]
    assert saved.access_token == NEW_ACCESS and saved.version == LEASED_AT + 1


def test_a_save_that_the_cache_missed_is_logged_as_an_invalidation():
    new = merge_answer(EXPIRING, ANSWER.token, NOW)
    lease = TakenLease(LEASED_AT, "me", NOW + timedelta(minutes=1))
    steps = []
    drive(
        save_refreshed(CACHED, KEY, decided(), lease, new, None, NOW, TIMING),
        StorageUnavailable("blink"),
        None,  # the pause
        LEASED_AT + 1,
        False,  # Redis did not answer
        steps=steps,
    )
    assert kinds(steps) == [
        "SaveRefreshed",
        "Pause",
        "SaveRefreshed",
        "WriteCache",
        "RecordInvalidation",
        "Emit",
    ]
    assert isinstance(steps[3], WriteCache) and isinstance(steps[4], RecordInvalidation)
    assert steps[4].cache_keys == steps[3].cache_keys


def test_a_transient_failure_is_recorded_and_the_current_token_served_while_valid():
    lease = TakenLease(LEASED_AT, "me", NOW + timedelta(minutes=1), "a refresh by them ended")
    failed = GrantResult("transient", error="http_503", description="busy")
    steps = []
    flow = record_failure(CORE, KEY, decided(), lease, failed, NOW, TIMING)
    served = drive(flow, LEASED_AT + 1, steps=steps)
    assert served == EXPIRING and kinds(steps) == ["SaveRefreshed", "Emit"]
    assert steps[0].row is None and steps[0].save.status == "degraded"
    assert steps[0].save.last_error == "http_503: busy (after a refresh by them ended)"
    assert steps[1].event.kind == "status_changed" and steps[1].event.status == "degraded"
    expired = decided(TokenSet("old-access", "old-refresh", NOW, None))
    with pytest.raises(ProviderError):
        drive(record_failure(CORE, KEY, expired, lease, failed, NOW, TIMING), LEASED_AT + 1)


def test_a_dead_grant_is_recorded_even_when_the_status_cannot_be_saved():
    lease = TakenLease(LEASED_AT, "me", NOW + timedelta(minutes=1))
    dead = GrantResult("reauth", error="invalid_grant")
    steps = []
    with pytest.raises(ReauthorizationRequired):
        drive(
            record_failure(CORE, KEY, decided(), lease, dead, NOW, TIMING),
            *[StorageUnavailable("down"), None] * 10,
            steps=steps,
        )
    assert set(kinds(steps)) == {"SaveRefreshed", "Pause"}  # no event for an unsaved status
    assert steps[0].save.status == "needs_reauth"
