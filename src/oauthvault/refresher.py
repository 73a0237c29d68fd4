"""The background refresher (``oauthvault worker``).

Every ``interval`` seconds it refreshes connections whose access token expires within
``lead_time``, and keeps idle refresh tokens alive: a provider whose catalog entry says
unused refresh tokens die after N days gets each connection refreshed once N/2 days have
passed without one. Several workers on several hosts may run at once: every refresh goes
through the row lock and re-reads the row, so a connection another worker just refreshed
is left alone. ``stop()`` (SIGTERM in the CLI) ends the loop after the current refresh.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field

from oauthvault.errors import VaultError
from oauthvault.models import TokenKey
from oauthvault.vault import OAuthTokenCache

__all__ = ["BackgroundRefresher", "RefresherPass"]

logger = logging.getLogger("oauthvault.refresher")


@dataclass
class RefresherPass:
    """What one pass did: connections now fresh (refreshed here, or just before by another
    worker), and connections whose refresh failed."""

    refreshed: list[TokenKey] = field(default_factory=list)
    failed: list[TokenKey] = field(default_factory=list)


class BackgroundRefresher:
    def __init__(
        self,
        vault: OAuthTokenCache,
        *,
        lead_time: float = 300,
        interval: float = 30,
        batch_size: int = 100,
    ) -> None:
        self._vault = vault
        self._lead_time = lead_time
        self._interval = interval
        self._batch_size = batch_size
        self._stopping = threading.Event()

    def stop(self) -> None:
        """Finish the refresh under way, then return from :meth:`run`."""
        self._stopping.set()

    def run(self) -> None:
        """Pass after pass until :meth:`stop`."""
        logger.info("refresher started (lead time %ss, every %ss)", self._lead_time, self._interval)
        while not self._stopping.is_set():
            try:
                done = self.run_once()
                if done.refreshed or done.failed:
                    logger.info(
                        "refresher pass: %d refreshed, %d failed",
                        len(done.refreshed),
                        len(done.failed),
                    )
            except VaultError as error:  # the database is away: try again next pass
                logger.warning("refresher pass failed: %s", error)
            self._stopping.wait(self._interval)
        logger.info("refresher stopped")

    def run_once(self) -> RefresherPass:
        """One pass: expiring connections first, then idle ones."""
        result = RefresherPass()
        for key in self._vault.expiring_connections(self._lead_time, self._batch_size):
            if self._stopping.is_set():
                return result
            self._refresh(key, result, keep_alive=False)
        for key in self._vault.idle_connections(self._batch_size):
            if self._stopping.is_set():
                return result
            self._refresh(key, result, keep_alive=True)
        return result

    def _refresh(self, key: TokenKey, result: RefresherPass, *, keep_alive: bool) -> None:
        ids = (key.provider, key.workspace_id, key.actor_id)
        try:
            if keep_alive:
                self._vault.refresh_tokens(*ids)
            else:
                self._vault.get_fresh_tokens(*ids, min_ttl=self._lead_time)
        except VaultError as error:
            logger.warning("refresh of %s failed: %s", key, type(error).__name__)
            result.failed.append(key)
        else:
            result.refreshed.append(key)
