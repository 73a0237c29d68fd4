"""How many callbacks posted by providers (``response_mode=form_post``) this process keeps
at once: such a POST comes from anyone, without a key, and each one it accepts is kept
server-side until the browser picks it up (or it expires). No I/O here; time is a
parameter (``time.monotonic()`` seconds).
"""

from __future__ import annotations

from collections import Counter, deque

__all__ = [
    "DEFAULT_HELD_CALLBACKS_PER_ADDRESS",
    "DEFAULT_HELD_CALLBACKS_TOTAL",
    "CallbackBudget",
]

#: Posted callbacks kept at once for one client address, and for all of them together.
DEFAULT_HELD_CALLBACKS_PER_ADDRESS = 10
DEFAULT_HELD_CALLBACKS_TOTAL = 1000


class CallbackBudget:
    """Counts each callback kept for ``lifetime`` seconds (its handle's lifetime, whether
    or not it is picked up earlier, perhaps by another instance) against its client
    address and the total."""

    def __init__(self, per_address: int, total: int, lifetime: float) -> None:
        if per_address < 1 or total < 1 or lifetime <= 0:
            raise ValueError("a callback budget needs positive bounds and lifetime")
        self._per_address = per_address
        self._total = total
        self._lifetime = lifetime
        self._held: deque[tuple[float, str]] = deque()  # (expiry, address), oldest first
        self._by_address: Counter[str] = Counter()

    def admit(self, address: str, now: float) -> bool:
        """Whether one more callback from ``address`` may be kept now; if so, it counts
        from now on."""
        held = self._held
        while held and held[0][0] <= now:
            _, gone = held.popleft()
            self._by_address[gone] -= 1
            if not self._by_address[gone]:
                del self._by_address[gone]
        if len(held) >= self._total or self._by_address[address] >= self._per_address:
            return False
        held.append((now + self._lifetime, address))
        self._by_address[address] += 1
        return True
