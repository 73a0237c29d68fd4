"""The change feed: every process hears of every committed change of a connection.

PostgreSQL announces each change in the writing transaction (the ``oauth_tokens_announce``
trigger: ``NOTIFY oauthvault_changes, '[provider, workspace_id, actor_id, version,
deleted]'``). A vault listens on one connection of its own: :class:`ChangeFeed` in a
thread for the sync vault, :class:`AsyncChangeFeed` in a task for the async one. Each
change reaches the feed's :class:`ChangeListener` (the vault passes its local cache, which
is one by its shape: storage knows nothing of the cache).

The local cache is trusted only while the feed is known to work: after ``LISTEN`` the feed
sends a probe the way writes go (``send_probe``: through the store's own pool, so through
``DATABASE_URL``) and waits for it on the listening connection. Behind PgBouncer in
transaction mode, which does not carry ``LISTEN``, or when the listener reaches another
database than the writes, it never arrives: one warning, and the vault runs without the
local cache. The probe is repeated every ``heartbeat`` seconds; its round trip is the
feed lag. A lost connection, or a probe that does not come back in ``probe_timeout``, suspends
the local cache (dropping it) until the feed has reconnected and a probe came through.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol

import psycopg

from oauthvault.errors import InvalidInput, StorageUnavailable
from oauthvault.models import TokenKey

__all__ = ["CHANNEL", "AsyncChangeFeed", "ChangeFeed", "ChangeListener", "FeedState"]

logger = logging.getLogger("oauthvault.feed")

CHANNEL = "oauthvault_changes"
_PROBE = "?probe"
#: Seconds the first probe after a (re)connect may take before notifications are deemed
#: not to arrive at all (a transaction pooler).
FIRST_PROBE_TIMEOUT = 5.0


class ChangeListener(Protocol):
    """What a feed tells of what it hears (the vault's local cache is one)."""

    def heard(self, name: tuple[str, str, str], version: int, *, deleted: bool) -> None:
        """A change of the connection ``(provider, workspace_id, actor_id)`` committed at
        ``version`` (``deleted``: the delete of that version)."""

    def suspend(self) -> None:
        """The feed is down: changes may be missed until :meth:`resume`."""

    def resume(self) -> None:
        """The feed is live again (listening, and a probe came through)."""

    def clear(self) -> None:
        """A notification said nothing trustworthy: forget every connection."""


@dataclass(slots=True)
class FeedState:
    """What the feed is doing, for readiness and metrics."""

    connected: bool = False
    live: bool = False
    reconnects: int = 0
    last_lag: float | None = None  # seconds, the last probe's round trip
    unsupported: bool = False  # notifications never arrive (a transaction pooler)


class FeedLogic:
    """The decisions of both feeds, with time as a parameter and no I/O: when a probe is
    due or overdue, what a notification means for the listener. :class:`ChangeFeed` and
    :class:`AsyncChangeFeed` add the connection, the thread or task, and the sending."""

    def __init__(
        self,
        conninfo: str,
        description: str,
        listener: ChangeListener,
        send_probe: Any,
        *,
        connect_timeout: float,
        heartbeat: float,
        probe_timeout: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._conninfo = conninfo
        self._description = description
        self._listener = listener
        self._send_probe = send_probe  # (payload) -> None, or an awaitable for the async feed
        self._connect_timeout = max(1, round(connect_timeout))
        self._heartbeat = heartbeat
        self._probe_timeout = probe_timeout
        self._clock = clock
        self.state = FeedState()
        self._probe: tuple[str, float] | None = None  # (id, sent at)
        self._probe_lock = threading.Lock()  # the sync feed's sender thread clears it too
        self._probe_sent_at = float("-inf")
        self._failures = 0
        self._warned_unsupported = False

    @property
    def listener(self) -> ChangeListener:
        """What the feed tells of changes (the vault's local cache)."""
        return self._listener

    @property
    def awaiting_probe(self) -> bool:
        """Whether a probe was sent and has not come back yet."""
        return self._probe is not None

    def new_probe(self) -> str:
        """A new probe's payload, now awaited (send it on the channel)."""
        probe = secrets.token_hex(8)
        self._probe_sent_at = self._clock()
        self._probe = (probe, self._probe_sent_at)
        return json.dumps([_PROBE, probe])

    def received(self, payload: str) -> None:
        """Act on a notification: a probe back, a change, or something malformed."""
        try:
            item = json.loads(payload)
            if item[0] == _PROBE:
                self._probe_came_back(str(item[1]))
                return
            provider, workspace_id, actor_id, version, deleted = item
            key = TokenKey(provider, workspace_id, actor_id)  # ids that fail validation: malformed
            number = int(version)
        except (ValueError, TypeError, IndexError, KeyError, InvalidInput):
            # Any role may NOTIFY on the channel: a malformed one says nothing trustworthy
            # about any connection, so forget them all rather than miss a real change.
            logger.warning("malformed change notification: dropping the local cache")
            self._listener.clear()
            return
        self._listener.heard(
            (key.provider, key.workspace_id, key.actor_id), number, deleted=bool(deleted)
        )

    def _probe_came_back(self, probe: str) -> None:
        with self._probe_lock:
            current = self._probe
            if current is None or current[0] != probe:
                return
            self._probe = None
        self.state.last_lag = self._clock() - current[1]
        self._failures = 0
        if not self.state.live:
            self.state.live = True
            self.state.unsupported = False
            self._listener.resume()
            logger.info("change feed on %s is live", self._description)

    def probe_not_sent(self, payload: str) -> None:
        """The probe could not even be sent. While the feed is not yet live (a server just
        back) that says nothing about notifications: forget it, so that another goes out
        within 0.2 s. Once live it stays in flight and goes overdue, suspending the local
        cache: a feed whose probes cannot be checked is not trusted."""
        if self.state.live:
            return
        with self._probe_lock:
            probe = self._probe
            if probe is not None and json.dumps([_PROBE, probe[0]]) == payload:
                self._probe = None

    def probe_overdue(self) -> bool:
        """The probe in flight is late: ``probe_timeout`` once live; the first one after a
        (re)connect gets more (a server just back may be slow), before it counts as
        "notifications cannot arrive"."""
        if self._probe is None:
            return False
        timeout = self._probe_timeout
        if not self.state.live:
            timeout = max(FIRST_PROBE_TIMEOUT, self._probe_timeout)
        return self._clock() - self._probe[1] > timeout

    def probe_due(self) -> bool:
        return self._probe is None and (
            not self.state.live or self._clock() - self._probe_sent_at >= self._heartbeat
        )

    def _down_after(self, error: Exception) -> float:
        """What a failed listening session means (both feeds end one this way); returns
        how long to wait before reconnecting."""
        if isinstance(error, _Unsupported):
            return self._went_down("no notifications", unsupported=True)
        if isinstance(error, _Overdue):
            return self._went_down("probe overdue")
        if not isinstance(error, (psycopg.Error, OSError, StorageUnavailable)):
            logger.error("change feed failed", exc_info=error)
        return self._went_down(type(error).__name__)

    def _went_down(self, reason: str, *, unsupported: bool = False) -> float:
        """Suspend the local cache; returns how long to wait before reconnecting."""
        was_live = self.state.live
        self.state.live = False
        self.state.connected = False
        self._probe = None
        self._listener.suspend()
        self._failures += 1
        if unsupported:
            self.state.unsupported = True
            if not self._warned_unsupported:
                self._warned_unsupported = True
                logger.warning(
                    "change notifications from %s do not arrive (LISTEN through a "
                    "transaction pooler such as PgBouncer?): running without the local "
                    "cache; set OAUTHVAULT_LISTEN_URL to a direct connection",
                    self._description,
                )
        elif was_live:
            logger.warning(
                "change feed on %s lost (%s): local cache off until it is back",
                self._description,
                reason,
            )
        ceiling = 5.0 if unsupported else 2.0
        return min(ceiling, 0.05 * float(2 ** min(self._failures, 8)))


class ChangeFeed(FeedLogic):
    """The sync vault's feed: a daemon thread with its own connection."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None
        self._connection: psycopg.Connection[Any] | None = None
        # Probes go out on a worker of their own: a send stuck on a busy pool must not stop
        # the listener from reading (an overdue probe then suspends the local cache).
        self._sender = ThreadPoolExecutor(max_workers=1, thread_name_prefix="oauthvault-probe")

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="oauthvault-feed", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopped.set()
        if self._thread is not None:
            self._thread.join(timeout=self._connect_timeout + 2)
        self._sender.shutdown(wait=False, cancel_futures=True)
        self.state.live = False
        self._listener.suspend()

    def _send(self, payload: str) -> None:
        try:
            self._send_probe(payload)
        except Exception:  # not sent: the listener sends another soon
            logger.debug("change feed probe not sent", exc_info=True)
            self.probe_not_sent(payload)

    def _run(self) -> None:
        while not self._stopped.is_set():
            try:
                self._listen()
                wait = 0.0
            except Exception as error:  # never leave the local cache live without its feed
                wait = self._down_after(error)
            finally:
                connection, self._connection = self._connection, None
                if connection is not None:
                    connection.close()
            if wait:
                self.state.reconnects += 1
                self._stopped.wait(wait)

    def _listen(self) -> None:
        self._connection = psycopg.connect(
            self._conninfo, autocommit=True, connect_timeout=self._connect_timeout
        )
        connection = self._connection
        connection.execute(f"LISTEN {CHANNEL}")
        self.state.connected = True
        while not self._stopped.is_set():
            if self.probe_due() and not self._stopped.is_set():
                self._sender.submit(self._send, self.new_probe())
            for notify in connection.notifies(timeout=0.2):
                self.received(notify.payload)
            if self.probe_overdue():
                raise _Unsupported if not self.state.live else _Overdue


class AsyncChangeFeed(FeedLogic):
    """The async vault's feed: a task with its own connection."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._task: asyncio.Task[None] | None = None
        self._probes: set[asyncio.Task[None]] = set()
        self._stopping = False

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="oauthvault-feed")

    async def stop(self) -> None:
        self._stopping = True
        for task in (self._task, *self._probes):
            if task is not None:
                task.cancel()
        for task in (self._task, *self._probes):
            if task is not None:
                try:
                    await task
                except BaseException:  # noqa: S110 - cancelled or already failed
                    pass
        self.state.live = False
        self._listener.suspend()

    async def _send(self, payload: str) -> None:
        try:
            await self._send_probe(payload)
        except Exception:  # not sent: the listener sends another soon
            logger.debug("change feed probe not sent", exc_info=True)
            self.probe_not_sent(payload)

    async def _run(self) -> None:
        while not self._stopping:
            connection: psycopg.AsyncConnection[Any] | None = None
            try:
                connection = await psycopg.AsyncConnection.connect(
                    self._conninfo, autocommit=True, connect_timeout=self._connect_timeout
                )
                await self._listen(connection)
                wait = 0.0
            except Exception as error:  # never leave the local cache live without its feed
                wait = self._down_after(error)
            finally:
                if connection is not None:
                    await connection.close()
            if wait:
                self.state.reconnects += 1
                await asyncio.sleep(wait)

    async def _listen(self, connection: psycopg.AsyncConnection[Any]) -> None:
        await connection.execute(f"LISTEN {CHANNEL}")
        self.state.connected = True
        while not self._stopping:
            if self.probe_due():
                probe = asyncio.get_running_loop().create_task(self._send(self.new_probe()))
                self._probes.add(probe)
                probe.add_done_callback(self._probes.discard)
            async for notify in connection.notifies(timeout=0.2):
                self.received(notify.payload)
            if self.probe_overdue():
                raise _Unsupported if not self.state.live else _Overdue


class _Unsupported(Exception):
    """The first probe never came back: notifications cannot arrive on this connection."""


class _Overdue(Exception):
    """A heartbeat probe did not come back in time: the connection is not trustworthy."""
