"""The in-process cache (L1): sealed records (never plaintext tokens:
:class:`~oauthvault.crypto.sealing.LocalRecord`), and the newest version this process has
heard of for each connection.

Bounded (LRU, ``size`` entries); an entry lives no longer than its token's TTL and no
longer than ``max_age`` seconds. It is trusted only while the change feed is live
(:meth:`LocalCache.suspend` drops everything and refuses entries until
:meth:`LocalCache.resume`). :meth:`LocalCache.heard` records a committed change from the
feed or from this process's own writes in its
:class:`~oauthvault.cache.versions.VersionMemory` (:attr:`LocalCache.versions`, which the
vault asks about Redis values): an entry older than it is dropped. Thread-safe; no I/O.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable

from oauthvault.cache.versions import LocalKey, VersionCounters, VersionMemory
from oauthvault.crypto.sealing import LocalRecord
from oauthvault.models import TokenKey

__all__ = ["LocalCache", "LocalCounters", "LocalKey", "local_key"]


def local_key(key: TokenKey) -> LocalKey:
    """What entries are kept under: a plain tuple of the ids, so that a hit needs neither a
    ``TokenKey`` nor a formatted cache key (only validated ids are ever stored, so ids that
    fail validation simply miss)."""
    return (key.provider, key.workspace_id, key.actor_id)


#: The local cache's counters (hits, misses, refused, feed events) are its memory's.
LocalCounters = VersionCounters


class LocalCache:
    def __init__(
        self,
        size: int = 10_000,
        max_age: float = 60.0,
        *,
        versions_kept: int | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if size < 1 or max_age <= 0:
            raise ValueError("the local cache needs a positive size and max age")
        self._size = size
        self._max_age = max_age
        self._clock = clock
        self._lock = threading.Lock()
        # ids -> (version, sealed record, monotonic deadline)
        self._entries: OrderedDict[LocalKey, tuple[int, LocalRecord, float]] = OrderedDict()
        self.counters = VersionCounters()
        #: The newest version heard of per connection (also when entries are refused).
        self.versions = VersionMemory(versions_kept or 10 * size, self.counters)
        self._live = False
        self._epoch = 0  # moves on every suspend and resume: see ticket()

    @property
    def live(self) -> bool:
        """True while entries may be served (the change feed is connected)."""
        return self._live

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, name: LocalKey) -> LocalRecord | None:
        """The sealed record of a live, unexpired entry, else ``None``."""
        entry = self._entries.get(name)
        if entry is None or not self._live:
            self.counters.misses += 1
            return None
        if entry[2] <= self._clock():
            with self._lock:
                if self._entries.get(name) is entry:  # not one just stored by another thread
                    del self._entries[name]
            self.counters.misses += 1
            return None
        try:
            self._entries.move_to_end(name)  # least recently used goes first
        except KeyError:
            pass  # evicted by another thread meanwhile: still served this once
        self.counters.hits += 1
        return entry[1]

    def ticket(self) -> int | None:
        """Taken before reading Redis or the database, handed to :meth:`put`: a value read
        while the feed was down, or before it came back, is never kept (changes made
        meanwhile were not heard of)."""
        return self._epoch if self._live else None

    def put(self, name: LocalKey, record: LocalRecord, ttl: float, ticket: int | None) -> bool:
        """Keep a record read from Redis or the database (since ``ticket``), unless the
        feed went down since, or a newer version (or the deletion) has been heard of.
        False when not kept."""
        if ticket is None or ttl <= 0:
            return False
        with self._lock:
            if not self._live or ticket != self._epoch:
                return False
            version = record.version
            if self.versions.is_outdated(name, version):
                self.counters.refused += 1
                return False
            deadline = self._clock() + min(ttl, self._max_age)
            self._entries[name] = (version, record, deadline)
            self._entries.move_to_end(name)
            while len(self._entries) > self._size:
                self._entries.popitem(last=False)
        return True

    def heard(self, name: LocalKey, version: int, *, deleted: bool = False) -> None:
        """A change committed at ``version`` (or a delete of that version)."""
        with self._lock:
            if self.versions.heard(name, version, deleted=deleted):
                # A forgotten version can no longer refuse an older value: reads in
                # flight (which may have fetched one) must not be kept.
                self._epoch += 1
            entry = self._entries.get(name)
            if entry is not None and (entry[0] < version or (deleted and entry[0] <= version)):
                del self._entries[name]

    def is_outdated(self, name: LocalKey, version: int) -> bool:
        """True when ``version`` is older than what this process has heard of."""
        return self.versions.is_outdated(name, version)

    def suspend(self) -> None:
        """The feed is down: forget every entry and keep none until :meth:`resume`."""
        with self._lock:
            self.versions.suspend()
            self._live = False
            self._epoch += 1
            self._entries.clear()

    def resume(self) -> None:
        """The feed is live again (listening, and a probe came through)."""
        with self._lock:
            self._entries.clear()
            self._epoch += 1
            self._live = True
            self.versions.resume()

    def clear(self) -> None:
        """Drop every entry, and keep none read before (their tickets no longer hold)."""
        with self._lock:
            self._entries.clear()
            self._epoch += 1
