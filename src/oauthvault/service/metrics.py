"""Prometheus metrics of the service and the worker, with ``prometheus-client``.

Everything is read when scraped, from counters the vault keeps anyway
(:meth:`~oauthvault.vault.base.VaultBase.cache_info`,
:meth:`~oauthvault.vault.base.VaultBase.refresh_outcomes`) and from the token endpoint's
own histogram. No label ever carries a token, a workspace id or an actor id: providers,
sources, outcomes and states only.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping

from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from oauthvault.audit import AuditTrail
from oauthvault.errors import VaultError
from oauthvault.vault.results import CacheInfo

__all__ = ["ServiceMetrics", "VaultCollector"]

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
    ) -> None:
        self._cache_info = cache_info
        self._refresh_outcomes = refresh_outcomes
        self._cache_available = cache_available
        self._webhooks = webhooks
        self._count_connections = count_connections
        self._audit = audit
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
