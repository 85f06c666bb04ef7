"""GPT-Live usage for Prometheus; imported at the first scrape of /metrics."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from rtedge.live.usage import LiveUsage


class LiveUsageCollector(Collector):
    def __init__(self, usage: LiveUsage) -> None:
        self._usage = usage

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
