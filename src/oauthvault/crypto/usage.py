"""How many values each key has encrypted, and how many it may.

Every seal draws a random 96-bit nonce. NIST SP 800-38D §8.3 caps random-nonce AES-GCM at
2^32 encryptions per key (the chance of a repeated nonce, which exposes the key's
authentication and the two plaintexts' XOR, then stays below 2^-32). The vault keeps to
:data:`ENCRYPTION_LIMIT` (2^30), well under it: counts lost in a crash, or not yet added up
across instances, cannot carry a key past the bound unnoticed. The remedy is rotation: a new
key starts from zero (``oauthvault rotate-key``).

:class:`EncryptionCounter` counts in this process, with no I/O: the key ring adds one per
seal; :mod:`oauthvault.storage.key_usage` takes the counts, adds them to the database's
totals in batches and settles what it wrote.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from typing import Literal

__all__ = ["ENCRYPTION_LIMIT", "EncryptionCounter", "UsageLevel", "usage_level"]

#: Encryptions per key the vault allows (see the module): a quarter of the 2^32 bound.
ENCRYPTION_LIMIT = 2**30
#: The counts a process gathers before it asks for them to be written (and at least every
#: few seconds: see :mod:`oauthvault.storage.key_usage`).
FLUSH_EVERY = 10_000

UsageLevel = Literal["ok", "warn", "over"]


def usage_level(encryptions: int, limit: int = ENCRYPTION_LIMIT) -> UsageLevel:
    """``over`` once a key reached ``limit``, ``warn`` past half of it, else ``ok``."""
    if encryptions >= limit:
        return "over"
    if encryptions * 2 > limit:
        return "warn"
    return "ok"


class EncryptionCounter:
    """Encryptions by key id, counted in this process (thread-safe).

    :meth:`add` runs on every seal; :meth:`take` hands the counts not yet written to the
    writer, which then either :meth:`settle`\\ s them with the database's new totals or
    :meth:`give_back`\\ s them for the next attempt. :meth:`totals` is the last known
    database totals plus what this process has not written yet.
    """

    __slots__ = ("_flush_every", "_in_flight", "_known", "_lock", "_pending", "_unwritten", "_wake")

    def __init__(self, flush_every: int = FLUSH_EVERY) -> None:
        self._lock = threading.Lock()
        self._pending: dict[bytes, int] = {}
        self._in_flight: dict[str, int] = {}
        self._known: dict[str, int] = {}
        self._unwritten = 0
        self._flush_every = flush_every
        self._wake: Callable[[], None] | None = None

    def __repr__(self) -> str:
        return f"EncryptionCounter(totals={self.totals()!r})"

    def add(self, key_id: bytes) -> None:
        """Count one encryption with the key ``key_id`` (its 4 bytes)."""
        with self._lock:
            self._pending[key_id] = self._pending.get(key_id, 0) + 1
            self._unwritten += 1
            due = self._unwritten == self._flush_every
        if due and self._wake is not None:
            self._wake()

    def when_due(self, wake: Callable[[], None] | None) -> None:
        """Call ``wake`` (cheap, non-blocking) each time ``flush_every`` counts wait."""
        self._wake = wake

    def take(self) -> dict[str, int]:
        """The counts not written yet, by hex key id; they stay in :meth:`totals` until
        settled or given back."""
        with self._lock:
            pending, self._pending, self._unwritten = self._pending, {}, 0
            for key_id, count in pending.items():
                name = key_id.hex()
                self._in_flight[name] = self._in_flight.get(name, 0) + count
            return dict(self._in_flight)

    def settle(self, totals: Mapping[str, int]) -> None:
        """The counts taken were written: ``totals`` are the database's, which hold them."""
        with self._lock:
            self._in_flight.clear()
            self._known.update(totals)

    def give_back(self) -> None:
        """The counts taken were not written: keep them for the next :meth:`take`."""
        with self._lock:
            for name, count in self._in_flight.items():
                key_id = bytes.fromhex(name)
                self._pending[key_id] = self._pending.get(key_id, 0) + count
            self._in_flight.clear()

    def learn(self, totals: Mapping[str, int]) -> None:
        """Totals read from the database (no counts of this process in flight)."""
        with self._lock:
            self._known.update(totals)

    def totals(self) -> dict[str, int]:
        """Encryptions by hex key id: the database's as last known, plus this process's
        not yet written."""
        with self._lock:
            result = dict(self._known)
            for name, count in self._in_flight.items():
                result[name] = result.get(name, 0) + count
            for key_id, count in self._pending.items():
                name = key_id.hex()
                result[name] = result.get(name, 0) + count
            return result
