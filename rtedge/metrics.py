"""Prometheus metrics for ``/metrics``: built from the one ``State`` at scrape time by a
prometheus-client collector, so there is no second copy of the numbers to drift.

Names follow Prometheus' conventions: base units in the name (``_seconds``, ``_ratio``), counters
end in ``_total`` (prometheus-client appends it on the wire), one ``rtedge_`` prefix. The fleet's
rules in ``config/prometheus/`` are written against exactly these names; the README's "Running a
fleet" lists them and the renames.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, InfoMetricFamily, Metric
from prometheus_client.registry import Collector

from rtedge.identity import Identity as Identity  # re-exported: the collectors' argument
from rtedge.state import Connection, State, Turn

Counts = Callable[[], Mapping[str, int]]


class StateCollector(Collector):
    def __init__(self, state: State, identity: Identity | None = None) -> None:
        self._state = state
        self._identity = identity

    def collect(self) -> Iterator[Metric]:
        s = self._state
        ident = self._identity
        if ident is not None:
            info = InfoMetricFamily("rtedge", "The daemon's version, device id, provider and model")
            info.add_metric(
                [],
                {
                    "version": ident.version,
                    "device_id": ident.device_id,
                    "provider": ident.provider,
                    "model": ident.model,
                },
            )
            yield info
            if ident.model_shutdown is not None:
                shutdown = GaugeMetricFamily(
                    "rtedge_model_shutdown_timestamp_seconds",
                    "Unix time at which the service stops serving the configured model",
                    labels=["model"],
                )
                shutdown.add_metric([ident.model], ident.model_shutdown)
                yield shutdown
        up = GaugeMetricFamily("rtedge_call_up", "1 while the call to the service is up")
        up.add_metric([], 1.0 if s.connection is Connection.CONNECTED else 0.0)
        yield up
        yield _one_hot(
            "rtedge_connection_state", "Connection state (1 for the current one)", "state",
            [c.value for c in Connection], s.connection.value,
        )  # fmt: skip
        yield _counter("rtedge_reconnects", "Calls lost and rebuilt", s.reconnects)
        yield _counter("rtedge_calls_started", "Calls that came up", s.calls_started)
        yield _counter(
            "rtedge_call_connected_seconds", "Seconds connected to the service", s.call_seconds()
        )
        age = GaugeMetricFamily("rtedge_session_age_seconds", "Age of the current session")
        age.add_metric([], time.monotonic() - s.session_started if s.session_started else 0.0)
        yield age
        yield _one_hot(
            "rtedge_turn_state", "Turn state (1 for the current one)", "turn",
            [t.value for t in Turn], s.turn.value,
        )  # fmt: skip
        levels = GaugeMetricFamily(
            "rtedge_audio_level_ratio",
            "Audio RMS level, 0 to 1 of full scale",
            labels=["direction"],
        )
        levels.add_metric(["mic"], s.mic_level)
        levels.add_metric(["speaker"], s.speaker_level)
        yield levels
        yield _counter("rtedge_display_frames_shown", "Avatar frames shown", s.frames_shown)
        yield _counter("rtedge_display_frames_dropped", "Avatar frames dropped", s.frames_dropped)
        yield _labelled("rtedge_events_received", "Server events by type", "type", s.events_in)
        yield _labelled("rtedge_events_bad", "Bad or unknown server events", "kind", s.events_bad)
        yield _labelled(
            "rtedge_queue_drops", "Items dropped from full queues", "queue", s.queue_drops
        )
        tokens = CounterMetricFamily(
            "rtedge_realtime_tokens",
            "Tokens the service reported using (response.done usage)",
            labels=["direction", "modality"],
        )
        for key, value in sorted(s.tokens.items()):
            direction, _, modality = key.partition("_")
            tokens.add_metric([direction, modality], value)
        yield tokens
        dev = GaugeMetricFamily("rtedge_device_up", "1 while a device works", labels=["device"])
        for name, status in sorted(s.devices.items()):
            dev.add_metric([name], 1.0 if status.ok else 0.0)
        yield dev
        yield from _rate_limits(s.rate_limits)


class HttpCollector(Collector):
    """Refused HTTP requests by reason (guard rules, connection limits), for Prometheus."""

    def __init__(self, refused: Callable[[], dict[str, int]]) -> None:
        self._refused = refused

    def collect(self) -> Iterator[Metric]:
        yield _labelled(
            "rtedge_http_refused", "HTTP requests or connections refused", "reason", self._refused()
        )


class PartsCollector(Collector):
    """Counters that live in the parts rather than in ``State``: the audio threads' xruns and the
    watchdog pings withheld for a stalled part. Read at scrape time; a reopened device starts its
    count again, which ``rate()`` takes as a counter reset."""

    def __init__(self, xruns: Counts, watchdog_withheld: Counts) -> None:
        self._xruns = xruns
        self._withheld = watchdog_withheld

    def collect(self) -> Iterator[Metric]:
        yield _labelled(
            "rtedge_audio_xruns",
            "ALSA underruns (playback) and overruns (capture)",
            "direction",
            self._xruns(),
        )
        yield _labelled(
            "rtedge_watchdog_pings_withheld",
            "systemd watchdog pings withheld because a part made no progress",
            "part",
            self._withheld(),
        )


def _one_hot(name: str, doc: str, label: str, values: list[str], current: str) -> GaugeMetricFamily:
    # Every value present (0 or 1), so a state left does not linger as a stale series.
    metric = GaugeMetricFamily(name, doc, labels=[label])
    for value in values:
        metric.add_metric([value], 1.0 if value == current else 0.0)
    return metric


def _rate_limits(limits: dict[str, dict[str, float | None]]) -> Iterator[Metric]:
    """The service's last ``rate_limits.updated``, one series per limit name."""
    for key, doc in (
        ("limit", "Rate limit reported by the service"),
        ("remaining", "Rate limit remaining, as last reported by the service"),
        ("reset_seconds", "Seconds until the rate limit resets, as last reported"),
    ):
        metric = GaugeMetricFamily(f"rtedge_rate_limit_{key}", doc, labels=["name"])
        for name, values in sorted(limits.items()):
            value = values.get(key)
            if value is not None:
                metric.add_metric([name], value)
        yield metric


def _counter(name: str, doc: str, value: float) -> CounterMetricFamily:
    metric = CounterMetricFamily(name, doc)
    metric.add_metric([], value)
    return metric


def _labelled(name: str, doc: str, label: str, counts: Mapping[str, int]) -> CounterMetricFamily:
    metric = CounterMetricFamily(name, doc, labels=[label])
    for key, value in sorted(counts.items()):
        metric.add_metric([key], value)
    return metric
