"""When a PostgreSQL store stops trusting its pool, and when it checks the server again.

psycopg_pool replaces a broken connection in the background, backing off 1 s, 2 s, 4 s…
between attempts: a server that is back after a restart would be used again only seconds
later, and meanwhile every call waits for the pool timeout. Instead, once a connection
breaks, the store closes this gate: calls fail at once with ``StorageUnavailable``, except
one every ``probe_interval`` seconds, which connects directly; when that works the store
opens the gate again on a new pool. No I/O here: the stores do it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

__all__ = ["OutageGate"]


class OutageGate:
    """Open while the pool is trusted; closed from a broken connection until a probe works.

    Thread-safe; the asyncio store uses it from one thread.
    """

    def __init__(
        self, probe_interval: float = 0.2, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._probe_interval = probe_interval
        self._clock = clock
        self._lock = threading.Lock()
        self._failed_at: float | None = None
        self._next_probe = 0.0

    @property
    def is_open(self) -> bool:
        return self._failed_at is None

    def close(self) -> None:
        """A connection broke: stop trusting the pool (the first probe may run at once)."""
        with self._lock:
            if self._failed_at is None:
                self._failed_at = self._clock()
                self._next_probe = self._failed_at

    def open(self) -> None:
        """A probe reached the server and the pool was replaced."""
        with self._lock:
            self._failed_at = None

    def claim_probe(self) -> bool:
        """True for the one caller that should probe now; the others should fail fast."""
        with self._lock:
            now = self._clock()
            if self._failed_at is None or now < self._next_probe:
                return False
            self._next_probe = now + self._probe_interval
            return True

    def seconds_down(self) -> float:
        """How long the gate has been closed (0 when open)."""
        failed_at = self._failed_at
        return 0.0 if failed_at is None else max(0.0, self._clock() - failed_at)
