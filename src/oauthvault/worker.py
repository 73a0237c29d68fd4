"""``run_worker``: the background refresher as a process (``oauthvault worker``), as
``create_app`` is the HTTP service.

It assembles what the refresher needs from the settings: the vault with the service's
providers (``OAUTHVAULT_CONFIG``), the webhook for connection events, and optionally a
Prometheus endpoint; then it runs :class:`~oauthvault.refresher.BackgroundRefresher`.
"""

from __future__ import annotations

import signal
from wsgiref.simple_server import WSGIServer

from oauthvault.config import Settings
from oauthvault.refresher import BackgroundRefresher, RefresherPass
from oauthvault.service.config import service_config_from
from oauthvault.service.webhooks import WebhookSender, webhook_sender
from oauthvault.vault import OAuthTokenCache

__all__ = ["run_worker"]


def run_worker(
    settings: Settings,
    *,
    interval: float = 30.0,
    lead_time: float = 300.0,
    once: bool = False,
    metrics_port: int | None = None,
    metrics_host: str = "127.0.0.1",
) -> RefresherPass | None:
    """Refresh connections expiring within ``lead_time`` seconds, a pass every ``interval``
    seconds, until SIGTERM or SIGINT (it installs handlers for both: call it from the main
    thread). With ``once``, run one pass and return what it did. With ``metrics_port``,
    serve Prometheus metrics on ``metrics_host`` meanwhile. Safe on several hosts at once.

    Raises:
        ConfigError: a setting or the configuration file is unusable.
        StorageUnavailable: the database cannot be reached at the start.
    """
    config = service_config_from(settings)
    webhooks = webhook_sender(config)
    with OAuthTokenCache(
        settings=settings,
        providers=config.providers,
        on_event=webhooks.send if webhooks else None,
    ) as vault:
        refresher = BackgroundRefresher(vault, lead_time=lead_time, interval=interval)
        server = None
        if metrics_port is not None:
            server = _serve_metrics(vault, webhooks, metrics_host, metrics_port)
        try:
            if once:
                return refresher.run_once()
            for signum in (signal.SIGTERM, signal.SIGINT):
                signal.signal(signum, lambda *_: refresher.stop())
            refresher.run()
            return None
        finally:
            if server is not None:
                server.shutdown()


def _serve_metrics(
    vault: OAuthTokenCache, webhooks: WebhookSender | None, host: str, port: int
) -> WSGIServer:
    """Start the Prometheus endpoint (a thread); the caller shuts the server down."""
    from prometheus_client import start_http_server

    from oauthvault.service.metrics import ServiceMetrics, VaultCollector

    collector = VaultCollector(
        vault.cache_info,
        vault.refresh_outcomes,
        lambda: vault.cache_available if vault.backend_mode == "db+cache" else None,
        (lambda: webhooks.deliveries) if webhooks is not None else None,
        count_connections=vault.count_by_status,
        key_encryptions=vault.key_encryptions,
    )
    server, _thread = start_http_server(
        port, addr=host, registry=ServiceMetrics(collector).registry
    )
    return server
