"""A clock the tests set by hand, for the vaults' (and state managers') ``clock=`` argument."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

NOW = datetime(2030, 6, 1, 12, 0, tzinfo=UTC)


class Clock:
    """Returns ``now`` when called; the test moves it with :meth:`advance` (or sets ``now``)."""

    def __init__(self, now: datetime = NOW) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)
