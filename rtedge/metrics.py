"""Prometheus metrics for ``/metrics``: built from the one ``State`` at scrape time by a
prometheus-client collector, so there is no second copy of the numbers to drift."""

from __future__ import annotations

import time
from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from rtedge.state import Connection, State


class StateCollector(Collector):
    def __init__(self, state: State) -> None:
        self._state = state

    def collect(self) -> Iterator[Metric]:
        s = self._state
        up = GaugeMetricFamily("rtedge_call_up", "1 while the call to the service is up")
        up.add_metric([], 1.0 if s.connection is Connection.CONNECTED else 0.0)
        yield up
        conn = GaugeMetricFamily(
            "rtedge_connection_state", "Connection state (1 for the current one)", labels=["state"]
        )
        for c in Connection:
            conn.add_metric([c.value], 1.0 if s.connection is c else 0.0)
        yield conn
        yield _counter("rtedge_reconnects", "Calls lost and rebuilt", s.reconnects)
        yield _counter("rtedge_calls_started", "Calls that came up", s.calls_started)
        age = GaugeMetricFamily("rtedge_session_age_seconds", "Age of the current session")
        age.add_metric([], time.monotonic() - s.session_started if s.session_started else 0.0)
        yield age
        turn = GaugeMetricFamily(
            "rtedge_turn_state", "Turn state (1 for the current)", labels=["turn"]
        )
        turn.add_metric([s.turn.value], 1.0)
        yield turn
        levels = GaugeMetricFamily(
            "rtedge_audio_level", "Audio RMS level 0..1", labels=["direction"]
        )
        levels.add_metric(["mic"], s.mic_level)
        levels.add_metric(["speaker"], s.speaker_level)
        yield levels
        yield _counter("rtedge_frames_shown", "Avatar frames shown", s.frames_shown)
        yield _counter("rtedge_frames_dropped", "Avatar frames dropped", s.frames_dropped)
        yield _labelled("rtedge_events_received", "Server events by type", "type", s.events_in)
        yield _labelled("rtedge_events_bad", "Bad or unknown server events", "kind", s.events_bad)
        yield _labelled(
            "rtedge_queue_drops", "Items dropped from full queues", "queue", s.queue_drops
        )
        dev = GaugeMetricFamily("rtedge_device_up", "1 while a device works", labels=["device"])
        for name, status in sorted(s.devices.items()):
            dev.add_metric([name], 1.0 if status.ok else 0.0)
        yield dev


def _counter(name: str, doc: str, value: float) -> CounterMetricFamily:
    metric = CounterMetricFamily(name, doc)
    metric.add_metric([], value)
    return metric


def _labelled(name: str, doc: str, label: str, counts: dict[str, int]) -> CounterMetricFamily:
    metric = CounterMetricFamily(name, doc, labels=[label])
    for key, value in sorted(counts.items()):
        metric.add_metric([key], value)
    return metric
