# WARNING: generated from vault/pending_records_async.py by scripts/async_to_sync.py: do not edit.
# Edit vault/pending_records_async.py, then run scripts/async_to_sync.py (scripts/test checks it).
"""One kind of one-time record (``"state"``, ``"link"``…) kept through a vault.

:class:`AsyncPendingRecords` (:mod:`oauthvault.vault.pending_records_async`, the hand-written
source) and ``PendingRecords`` (:mod:`oauthvault.vault.pending_records`, generated from it by
``scripts/async_to_sync.py``) run the I/O-free flows of :mod:`oauthvault.vault.pending` with
the flow driver their vault hands them (``vault.pending_records(kind, ttl)``).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

from oauthvault.vault.flows import VaultCore
from oauthvault.vault.pending import SavedRecord, save_record, take_record
from oauthvault.vault.steps import Flow

__all__ = ["PendingRecords"]


class PendingRecords:
    """One kind of one-time record living ``ttl`` seconds: sealed, in Redis while it
    answers, else in the database, and taken exactly once."""

    def __init__(
        self,
        core: VaultCore,
        run: Callable[[Flow], Any],
        kind: str,
        ttl: int,
    ) -> None:
        if ttl <= 0:
            raise ValueError("a one-time record's lifetime must be positive")
        self._core = core
        self._run = run
        self._kind = kind
        self._ttl = timedelta(seconds=ttl)

    def save(self, payload: dict[str, Any]) -> SavedRecord:
        """Keep ``payload`` (JSON-serializable) for the lifetime; returns its secret."""
        expires_at = self._core.clock() + self._ttl
        secret: str = self._run(save_record(self._core, self._kind, payload, expires_at))
        return SavedRecord(secret, expires_at)

    def take(self, secret: object) -> dict[str, Any] | None:
        """The payload behind ``secret``, usable once; ``None`` if unknown, used or expired."""
        payload: dict[str, Any] | None = self._run(take_record(self._core, self._kind, secret))
        return payload
