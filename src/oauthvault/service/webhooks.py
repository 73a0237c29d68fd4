"""Signed webhooks for connection events (refreshed, status changes).

Each POST carries the event as JSON and ``X-Oauthvault-Signature: t=<unix time>,v1=<hex>``
where ``<hex>`` is HMAC-SHA256 over ``"<t>.<body>"`` with the shared secret. Receivers
recompute it, compare with :func:`hmac.compare_digest`, and reject old timestamps.
Deliveries are retried a few times and never block or fail the refresh that caused them.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import time
import uuid
from dataclasses import asdict
from typing import TYPE_CHECKING

import httpx

from oauthvault.models import ConnectionEvent

if TYPE_CHECKING:
    from oauthvault.service.config import ServiceConfig

__all__ = [
    "EVENT_ID_HEADER",
    "SIGNATURE_HEADER",
    "WebhookSender",
    "sign",
    "verify",
    "webhook_sender",
]

logger = logging.getLogger("oauthvault.webhooks")
SIGNATURE_HEADER = "X-Oauthvault-Signature"
#: The event's id, also the body's ``id``: the same on every retry of one event, for the
#: receiver to drop a delivery it has already handled.
EVENT_ID_HEADER = "X-Oauthvault-Event-Id"
_ATTEMPTS = 3


def sign(secret: str, body: bytes, timestamp: int) -> str:
    """The signature header value for ``body`` sent at ``timestamp``."""
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={digest.hexdigest()}"


def verify(secret: str, body: bytes, header: str, *, now: float, tolerance: float = 300) -> bool:
    """True when ``header`` signs ``body`` with ``secret`` and is at most ``tolerance`` old."""
    try:
        fields = dict(part.split("=", 1) for part in header.split(","))
        timestamp = int(fields["t"])
    except (ValueError, KeyError):
        return False
    if abs(now - timestamp) > tolerance:
        return False
    expected = sign(secret, body, timestamp).split("v1=", 1)[1]
    return hmac.compare_digest(expected, fields.get("v1", ""))


def _body(event: ConnectionEvent, event_id: str) -> bytes:
    payload = asdict(event)
    payload["at"] = event.at.isoformat()
    message = {"id": event_id, "type": f"connection.{event.kind}", "data": payload}
    return json.dumps(message).encode()


class WebhookSender:
    """Posts events to one URL; secret-free ``repr``."""

    def __init__(self, url: str, secret: str, *, timeout: float = 5.0) -> None:
        self._url = url
        self._secret = secret
        self._timeout = timeout
        self._tasks: set[asyncio.Task[None]] = set()
        #: Deliveries by outcome ("delivered", "failed"), for metrics.
        self.deliveries: dict[str, int] = {"delivered": 0, "failed": 0}

    def __repr__(self) -> str:
        return f"WebhookSender(url={self._url!r})"

    def _request(self, event: ConnectionEvent) -> tuple[bytes, dict[str, str]]:
        event_id = str(uuid.uuid4())  # one request per event: its retries resend it as is
        body = _body(event, event_id)
        headers = {
            "Content-Type": "application/json",
            EVENT_ID_HEADER: event_id,
            SIGNATURE_HEADER: sign(self._secret, body, int(time.time())),
        }
        return body, headers

    def send(self, event: ConnectionEvent) -> None:
        """Deliver now, blocking (for the worker process)."""
        body, headers = self._request(event)
        with httpx.Client(timeout=self._timeout) as client:
            for attempt in range(_ATTEMPTS):
                try:
                    if client.post(self._url, content=body, headers=headers).is_success:
                        self.deliveries["delivered"] += 1
                        return
                except httpx.HTTPError:
                    pass
                time.sleep(0.2 * 2**attempt)
        self.deliveries["failed"] += 1
        logger.warning("webhook for %s not delivered", event.kind)

    def schedule(self, event: ConnectionEvent) -> None:
        """Deliver in the background of the running event loop (for the service)."""
        task = asyncio.get_running_loop().create_task(self._deliver(event))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _deliver(self, event: ConnectionEvent) -> None:
        body, headers = self._request(event)
        async with httpx.AsyncClient(timeout=self._timeout) as client:
            for attempt in range(_ATTEMPTS):
                try:
                    response = await client.post(self._url, content=body, headers=headers)
                    if response.is_success:
                        self.deliveries["delivered"] += 1
                        return
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(0.2 * 2**attempt)
        self.deliveries["failed"] += 1
        logger.warning("webhook for %s not delivered", event.kind)

    async def drain(self) -> None:
        """Wait for deliveries under way (at shutdown)."""
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)


def webhook_sender(config: ServiceConfig) -> WebhookSender | None:
    """The configured webhook, if any."""
    if config.webhook_url is None or config.webhook_secret is None:
        return None
    return WebhookSender(config.webhook_url, config.webhook_secret)
