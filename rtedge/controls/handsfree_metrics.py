"""The hands-free front end for Prometheus; imported at the first scrape of /metrics."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from rtedge.audio.frontend import Frontend
from rtedge.controls.handsfree import HandsFree


class FrontendCollector(Collector):
    """The audio front end in Prometheus: wake detections, false wakes, voice barge-ins, the
    echo canceller's ERLE and delay, and its CPU time."""

    def __init__(self, frontend: Frontend, hands_free: HandsFree | None) -> None:
        self._frontend = frontend
        self._hands_free = hands_free

    def collect(self) -> Iterator[Metric]:
        s = self._frontend.stats
        cpu = CounterMetricFamily(
            "rtedge_audio_frontend_cpu_seconds",
            "CPU time of the microphone front end (echo cancellation, wake word, voice detector)",
        )
        cpu.add_metric([], s.cpu_s)
        yield cpu
        if self._frontend.gate is not None:
            for name, doc, value in (
                ("rtedge_wake_detections", "Hands-free turns opened by the wake word", s.wakes),
                ("rtedge_false_wakes", "Wake words followed by no speech", s.false_wakes),
                (
                    "rtedge_voice_barge_ins",
                    "Replies cut by the wake word or speech",
                    self._hands_free.barge_ins if self._hands_free else 0,
                ),
            ):
                metric = CounterMetricFamily(name, doc)
                metric.add_metric([], value)
                yield metric
        canceller = self._frontend.canceller
        if canceller is not None and canceller.echo_cancel:
            gauges: tuple[tuple[str, str, float | None], ...] = (
                ("rtedge_echo_erle_db", "Echo return loss enhancement (dB)", canceller.erle_db),
                ("rtedge_echo_delay_ms", "Echo path delay (ms)", canceller.delay_ms),
            )
            for name, doc, gauge_value in gauges:
                if gauge_value is not None:
                    gauge = GaugeMetricFamily(name, doc)
                    gauge.add_metric([], gauge_value)
                    yield gauge


__all__ = ["FrontendCollector"]
