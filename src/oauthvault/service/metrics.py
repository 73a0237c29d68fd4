"""Prometheus metrics of the service and the worker, with ``prometheus-client``.

Everything is read when scraped, from counters the vault keeps anyway
(:meth:`~oauthvault.vault.base.VaultBase.cache_info`,
:meth:`~oauthvault.vault.base.VaultBase.refresh_outcomes`) and from the token endpoint's
own histogram. No label ever carries a token, a workspace id or an actor id: providers,
sources, outcomes, states and key ids only (a key id is 4 bytes of a domain-tagged SHA-256
of the key: it names a key and reveals nothing usable about it).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping

from prometheus_client import CollectorRegistry, Histogram, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from oauthvault.audit import AuditTrail
from oauthvault.errors import StorageUnavailable, VaultError
from oauthvault.vault.results import CacheInfo

__all__ = ["ConnectionCounts", "ServiceMetrics", "VaultCollector", "serve_metrics"]

#: Seconds: the token endpoint's buckets, from a local-cache hit to a slow refresh.
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10)


class VaultCollector(Collector):
    """The vault's counters and states, collected at scrape time."""

    def __init__(
        self,
        cache_info: Callable[[], CacheInfo],
        refresh_outcomes: Callable[[], Mapping[tuple[str, str], int]],
        cache_available: Callable[[], bool | None],
        webhooks: Callable[[], Mapping[str, int]] | None = None,
        count_connections: Callable[[], Mapping[tuple[str, str], int]] | None = None,
        audit: Callable[[], AuditTrail | None] | None = None,
        key_encryptions: Callable[[], Mapping[str, int]] | None = None,
        key_encryption_limit: int | None = None,
    ) -> None:
        self._cache_info = cache_info
        self._refresh_outcomes = refresh_outcomes
        self._cache_available = cache_available
        self._webhooks = webhooks
        self._count_connections = count_connections
        self._audit = audit
        self._key_encryptions = key_encryptions
        self._key_encryption_limit = key_encryption_limit
        #: (provider, status) -> connections: counted at each scrape by
        #: ``count_connections`` (blocking: the worker), or set before it (the service).
        self.connections: Mapping[tuple[str, str], int] = {}

    def collect(self) -> Iterator[Metric]:
        if self._count_connections is not None:
            try:
                self.connections = self._count_connections()
            except VaultError:
                pass  # the last counts stand while the database is away
        info = self._cache_info()
        reads = CounterMetricFamily(
            "oauthvault_token_reads",
            "Token reads by where they were answered (local cache, Redis, the database)",
            labels=["source"],
        )
        reads.add_metric(["local"], info.local_hits)
        reads.add_metric(["redis"], info.redis_hits)
        reads.add_metric(["database"], info.database_reads)
        yield reads
        refused = CounterMetricFamily(
            "oauthvault_cache_refused",
            "Cached values refused as older than a change this process heard of",
        )
        refused.add_metric([], info.refused)
        yield refused
        refreshes = CounterMetricFamily(
            "oauthvault_refreshes",
            "Refresh outcomes (ok, transient, needs_reauth, lost, abandoned) by provider",
            labels=["provider", "outcome"],
        )
        for (provider, outcome), count in sorted(self._refresh_outcomes().items()):
            refreshes.add_metric([provider, outcome], count)
        yield refreshes
        connections = GaugeMetricFamily(
            "oauthvault_connections",
            "Stored connections by provider and status",
            labels=["provider", "status"],
        )
        for (provider, status), count in sorted(self.connections.items()):
            connections.add_metric([provider, status], count)
        yield connections
        available = self._cache_available()
        cache = GaugeMetricFamily(
            "oauthvault_cache_up", "1 while Redis answers (its breaker is closed), 0 when not"
        )
        if available is not None:
            cache.add_metric([], 1 if available else 0)
        yield cache
        local = GaugeMetricFamily(
            "oauthvault_local_cache_live", "1 while the local cache serves (its feed is live)"
        )
        local.add_metric([], 1 if info.local_live else 0)
        yield local
        entries = GaugeMetricFamily("oauthvault_local_cache_entries", "Local cache entries")
        entries.add_metric([], info.local_entries)
        yield entries
        reconnects = CounterMetricFamily(
            "oauthvault_feed_reconnects", "Times the change feed's listener reconnected"
        )
        reconnects.add_metric([], info.feed_reconnects)
        yield reconnects
        lag = GaugeMetricFamily(
            "oauthvault_feed_lag_seconds", "The change feed's last probe round trip"
        )
        if info.feed_lag is not None:
            lag.add_metric([], info.feed_lag)
        yield lag
        trail = self._audit() if self._audit is not None else None
        if trail is not None:
            queued = GaugeMetricFamily(
                "oauthvault_audit_queue", "Audit entries waiting to be written"
            )
            queued.add_metric([], trail.queued)
            yield queued
            written = CounterMetricFamily("oauthvault_audit_written", "Audit entries written")
            written.add_metric([], trail.written)
            yield written
            dropped = CounterMetricFamily(
                "oauthvault_audit_dropped", "Audit entries dropped (the queue was full)"
            )
            dropped.add_metric([], trail.dropped)
            yield dropped
        if self._key_encryptions is not None:
            # A gauge, not a counter: the sum of every instance's encryptions (the database
            # totals as last known, plus this process's not yet written).
            encryptions = GaugeMetricFamily(
                "oauthvault_key_encryptions",
                "Encryptions made with each key of the ring, by every instance",
                labels=["key_id"],
            )
            for key_id, count in self._key_encryptions().items():
                encryptions.add_metric([key_id], count)
            yield encryptions
        if self._key_encryption_limit is not None:
            limit = GaugeMetricFamily(
                "oauthvault_key_encryption_limit",
                "Encryptions a key may make (rotate before: doctor warns past half)",
            )
            limit.add_metric([], self._key_encryption_limit)
            yield limit
        if self._webhooks is not None:
            deliveries = CounterMetricFamily(
                "oauthvault_webhook_deliveries", "Webhook deliveries by outcome", labels=["outcome"]
            )
            for outcome, count in sorted(self._webhooks().items()):
                deliveries.add_metric([outcome], count)
            yield deliveries


class ServiceMetrics:
    """One registry per service (or worker): the vault's collector, and the token
    endpoint's latency histogram by outcome."""

    def __init__(self, collector: VaultCollector) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.collector = collector
        self.registry.register(collector)
        self.token_latency = Histogram(
            "oauthvault_token_request_seconds",
            "GET /v1/connections/token latency by outcome",
            labelnames=["outcome"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.proxy_latency = Histogram(
            "oauthvault_proxy_request_seconds",
            "Requests through /v1/proxy: time to the provider's answer, by provider and "
            "status class",
            labelnames=["provider", "status_class"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )


class ConnectionCounts:
    """The service's connection counts (a full-table count): counted again at most every
    ``interval`` seconds, however often ``/metrics`` is scraped, into the collector."""

    def __init__(
        self,
        collector: VaultCollector,
        count: Callable[[], Awaitable[Mapping[tuple[str, str], int]]],
        interval: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._collector = collector
        self._count = count
        self._interval = interval
        self._clock = clock
        self._counted_at: float | None = None
        self._lock = asyncio.Lock()

    async def refresh(self) -> None:
        """Count again when the last count is ``interval`` old (one count at a time); the
        last counts stand while the database is away."""
        async with self._lock:
            now = self._clock()
            if self._counted_at is not None and now - self._counted_at < self._interval:
                return
            self._counted_at = now
            try:
                self._collector.connections = await self._count()
            except StorageUnavailable:
                pass  # readiness says the database is down

    async def keep_fresh(self) -> None:
        """Refresh every ``interval`` seconds until cancelled (metrics on their own port)."""
        while True:
            await self.refresh()
            await asyncio.sleep(max(self._interval, 1))


def serve_metrics(
    port: int | None, host: str, metrics: ServiceMetrics, counts: ConnectionCounts
) -> Callable[[], None]:
    """With a ``port``, serve ``/metrics`` there (a thread), the connection counts kept
    fresh by a task of the running loop; the function returned stops both. Without, nothing
    (the service's own ``/metrics`` counts when scraped)."""
    if port is None:
        return lambda: None
    server, thread = start_http_server(port, addr=host, registry=metrics.registry)
    task = asyncio.get_running_loop().create_task(counts.keep_fresh())

    def stop() -> None:
        task.cancel()
        server.shutdown()
        server.server_close()
        thread.join()

    return stop
