"""A circuit breaker, so a dead Redis costs one timeout, not one per call.

``closed``: use Redis. After a failure it is ``open`` for a cooldown and callers go
straight to the database. When the cooldown ends, exactly one caller gets ``probe``:
it tries Redis; success closes the breaker, failure opens it again for twice as long
(up to a ceiling). Pure state and a clock, no I/O.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from enum import Enum

__all__ = ["CircuitBreaker", "Decision"]


class Decision(Enum):
    CLOSED = "closed"
    OPEN = "open"
    PROBE = "probe"


class CircuitBreaker:
    """Decides whether the next cache call may go to Redis.

    A new breaker starts by asking for a probe, so the first caller checks Redis (and
    replays any pending invalidations) before anyone reads from it.
    """

    def __init__(
        self,
        *,
        cooldown: float = 0.5,
        max_cooldown: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._base_cooldown = cooldown
        self._max_cooldown = max_cooldown
        self._cooldown = cooldown
        self._clock = clock
        self._lock = threading.Lock()
        # None means closed; otherwise the monotonic time from which a probe is allowed.
        self._open_until: float | None = float("-inf")

    @property
    def is_closed(self) -> bool:
        return self._open_until is None

    def decide(self) -> Decision:
        """Whether to use Redis now, skip it, or probe it."""
        if self._open_until is None:
            return Decision.CLOSED
        now = self._clock()
        with self._lock:
            if self._open_until is None:
                return Decision.CLOSED
            if now < self._open_until:
                return Decision.OPEN
            # Hold everyone else off while this caller probes.
            self._open_until = now + self._cooldown
            return Decision.PROBE

    def record_success(self) -> bool:
        """Close the breaker. True if it was open (Redis has just recovered)."""
        with self._lock:
            was_open = self._open_until is not None
            self._open_until = None
            self._cooldown = self._base_cooldown
            return was_open

    def record_failure(self) -> bool:
        """Open the breaker. True if it was closed (Redis has just failed)."""
        with self._lock:
            was_closed = self._open_until is None
            if not was_closed:
                self._cooldown = min(self._cooldown * 2, self._max_cooldown)
            self._open_until = self._clock() + self._cooldown
            return was_closed
