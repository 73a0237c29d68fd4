"""Where a vault's connection events go: counted by outcome (for metrics), logged (ids and
kinds, never a token), and handed to the application's ``on_event`` callback."""

from __future__ import annotations

import logging
from collections.abc import Callable

from oauthvault.models import ConnectionEvent

__all__ = ["EventSink", "outcome_of_event"]

logger = logging.getLogger("oauthvault.vault")


def outcome_of_event(event: ConnectionEvent) -> str | None:
    """The refresh outcome an event reports (``ok``, ``lost``, ``abandoned``,
    ``transient``, ``needs_reauth``), or ``None`` for an event that is not one."""
    if event.kind == "refreshed":
        return "ok"
    if event.kind == "refresh_lost":
        return "lost"
    if event.kind == "refresh_abandoned":
        return "abandoned"
    if event.status == "degraded":
        return "transient"
    if event.status == "needs_reauth":
        return "needs_reauth"
    return None


class EventSink:
    """Counts, logs and forwards one vault's connection events."""

    def __init__(self, on_event: Callable[[ConnectionEvent], None] | None) -> None:
        self._on_event = on_event
        self._outcomes: dict[tuple[str, str], int] = {}

    def outcomes(self) -> dict[tuple[str, str], int]:
        """Refresh outcomes counted so far, by (provider, outcome)."""
        return dict(self._outcomes)

    def emit(self, event: ConnectionEvent) -> None:
        outcome = outcome_of_event(event)
        if outcome is not None:
            key = (event.provider, outcome)
            self._outcomes[key] = self._outcomes.get(key, 0) + 1
        logger.info(
            "connection %s/%s/%s: %s (%s)",
            event.provider,
            event.workspace_id,
            event.actor_id,
            event.kind,
            event.status,
        )
        if self._on_event is not None:
            try:
                self._on_event(event)
            except Exception:  # an application's callback never breaks a refresh
                logger.exception("the on_event callback failed")
