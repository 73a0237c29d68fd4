"""The version memory: the newest version this process knows of for each connection.

It hears of every committed change the change feed announces and of this process's own
writes, whether or not the local cache is on, and lets the vault refuse a Redis value older
than what it knows (a replayed value, or one a frozen Redis delivered late). Bounded (the
least recently changed connections are forgotten first). Thread-safe; no I/O.

It is a :class:`~oauthvault.storage.feed.ChangeListener` by its shape: with the local cache
off, the feed tells it directly; with it on, the local cache
(:class:`~oauthvault.cache.local.LocalCache`) holds one and passes on what it hears.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass

__all__ = ["LocalKey", "VersionCounters", "VersionMemory"]

#: A connection's ids, as (provider, workspace_id, actor_id).
LocalKey = tuple[str, str, str]


@dataclass(slots=True)
class VersionCounters:
    """For metrics: hits, misses (of the local cache), values refused as older than
    known, feed events (approximate under threads: increments are not locked)."""

    hits: int = 0
    misses: int = 0
    refused: int = 0
    changes_heard: int = 0
    suspensions: int = 0


class VersionMemory:
    def __init__(self, kept: int = 100_000, counters: VersionCounters | None = None) -> None:
        if kept < 1:
            raise ValueError("the version memory needs a positive size")
        self._kept = kept
        self._lock = threading.Lock()
        # ids -> (newest version heard of, deleted at that version)
        self._versions: OrderedDict[LocalKey, tuple[int, bool]] = OrderedDict()
        self.counters = counters or VersionCounters()
        self._live = False

    def __len__(self) -> int:
        return len(self._versions)

    def heard(self, name: LocalKey, version: int, *, deleted: bool = False) -> bool:
        """A change committed at ``version`` (or a delete of that version). True when a
        connection was forgotten to make room (a forgotten version refuses nothing)."""
        with self._lock:
            self.counters.changes_heard += 1
            known = self._versions.get(name)
            if known is None or version > known[0] or (version == known[0] and deleted):
                self._versions[name] = (version, deleted)
                self._versions.move_to_end(name)
                if len(self._versions) > self._kept:
                    while len(self._versions) > self._kept:
                        self._versions.popitem(last=False)
                    return True
        return False

    def is_outdated(self, name: LocalKey, version: int) -> bool:
        """True when ``version`` is older than what this process has heard of (or is the
        version a delete removed)."""
        known = self._versions.get(name)
        return known is not None and (version < known[0] or (known[1] and version <= known[0]))

    def suspend(self) -> None:
        """The feed is down: what is known stays known (changes meanwhile may be missed;
        the vault then confirms Redis values with the database)."""
        if self._live:
            self.counters.suspensions += 1
        self._live = False

    def resume(self) -> None:
        """The feed is live again."""
        self._live = True

    def clear(self) -> None:
        """A malformed notification: versions already known stay true (they only grow)."""
