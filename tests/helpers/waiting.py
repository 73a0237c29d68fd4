"""Polling for a condition another thread or process brings about."""

from __future__ import annotations

import time
from collections.abc import Callable


def wait_for(
    condition: Callable[[], bool],
    timeout: float = 10.0,
    what: str = "the condition",
    *,
    interval: float = 0.01,
) -> float:
    """Call ``condition`` every ``interval`` seconds until it is true; the seconds that took.
    Past ``timeout`` it fails the test with ``what`` (an ``AssertionError``)."""
    started = time.monotonic()
    while not condition():
        elapsed = time.monotonic() - started
        if elapsed > timeout:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)
    return time.monotonic() - started
