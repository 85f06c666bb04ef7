"""GPT-Live usage for Prometheus; imported at the first scrape of /metrics."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from rtedge.live.usage import LiveUsage


class LiveUsageCollector(Collector):
    def __init__(self, usage: LiveUsage, delegations: Counter[str] | None = None) -> None:
        self._usage = usage
        self._delegations = delegations

    def collect(self) -> Iterator[Metric]:
        u = self._usage
        if u.session_seconds is not None:
            g = GaugeMetricFamily(
                "rtedge_live_session_seconds",
                "Billed seconds of the current GPT-Live session (its latest usage snapshot)",
            )
            g.add_metric([], u.session_seconds)
            yield g
        if u.context_ratio is not None:
            r = GaugeMetricFamily(
                "rtedge_live_context_usage_ratio",
                "Share of the GPT-Live context window in use (0..1)",
            )
            r.add_metric([], u.context_ratio)
            yield r
        if self._delegations:
            c = CounterMetricFamily(
                "rtedge_live_delegations",
                "GPT-Live delegations by target, and the device's answers to them",
                labels=["kind"],
            )
            for kind, n in sorted(self._delegations.items()):
                c.add_metric([kind], n)
            yield c
