"""Local HTTP endpoint: /healthz /readyz /status /metrics, and push-to-talk over HTTP.

Everything here reads the one ``State``; nothing here holds a secret to leak. Metrics are built
from the state at scrape time by a prometheus-client collector, so there is no second copy of
the numbers to drift.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable, Iterator
from typing import Any

from aiohttp import web
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from rtedge import __version__
from rtedge.state import Connection, State

log = logging.getLogger(__name__)

CONTENT_TYPE_LATEST = "text/plain; version=0.0.4; charset=utf-8"


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
        yield from _rate_limits(s.rate_limits)
        dev = GaugeMetricFamily("rtedge_device_up", "1 while a device works", labels=["device"])
        for name, status in sorted(s.devices.items()):
            dev.add_metric([name], 1.0 if status.ok else 0.0)
        yield dev


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


def _labelled(name: str, doc: str, label: str, counts: dict[str, int]) -> CounterMetricFamily:
    metric = CounterMetricFamily(name, doc, labels=[label])
    for key, value in sorted(counts.items()):
        metric.add_metric([key], value)
    return metric


class HealthServer:
    def __init__(
        self,
        state: State,
        host: str,
        port: int,
        *,
        on_press: Callable[[], None],
        on_release: Callable[[], None],
        extra_routes: list[Callable[[web.Application], None]] | None = None,
    ) -> None:
        self._state = state
        self._host = host
        self._port = port
        self._on_press = on_press
        self._on_release = on_release
        self.ready = False
        self.registry = CollectorRegistry(auto_describe=True)
        self.registry.register(StateCollector(state))
        self.app = web.Application()
        self.app.add_routes(
            [
                web.get("/healthz", self._healthz),
                web.get("/readyz", self._readyz),
                web.get("/status", self._status),
                web.get("/metrics", self._metrics),
                web.post("/ptt/press", self._press),
                web.post("/ptt/release", self._release),
            ]
        )
        if os.environ.get("RTEDGE_TEST_HOOKS") == "1":
            # Lets the test suite freeze the event loop to prove the watchdog notices.
            self.app.add_routes([web.post("/_test/stall", self._stall)])
        for add in extra_routes or []:
            add(self.app)
        self._runner: web.AppRunner | None = None
        self.bound_port: int | None = None

    async def start(self) -> None:
        self._runner = web.AppRunner(self.app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self._host, self._port, reuse_address=True)
        await site.start()
        server = site._server
        sockets = getattr(server, "sockets", None) or []
        self.bound_port = sockets[0].getsockname()[1] if sockets else self._port
        log.info("health endpoint on http://%s:%s", self._host, self.bound_port)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _healthz(self, _: web.Request) -> web.Response:
        problems = self._state.problems()
        if problems:
            return web.json_response({"healthy": False, "problems": problems}, status=503)
        return web.json_response({"healthy": True, "call_id": self._state.call_id})

    async def _readyz(self, _: web.Request) -> web.Response:
        # Ready means up and supervising, not connected: a device must boot with the network down.
        return web.json_response({"ready": self.ready}, status=200 if self.ready else 503)

    async def _status(self, _: web.Request) -> web.Response:
        data: dict[str, Any] = self._state.snapshot()
        data["version"] = __version__
        data["tasks"] = len(asyncio.all_tasks())  # a leak shows here first
        return web.json_response(data)

    async def _metrics(self, _: web.Request) -> web.Response:
        body = generate_latest(self.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def _press(self, _: web.Request) -> web.Response:
        self._on_press()
        return web.json_response({"ptt": "pressed", "turn": self._state.turn.value})

    async def _release(self, _: web.Request) -> web.Response:
        self._on_release()
        return web.json_response({"ptt": "released", "turn": self._state.turn.value})

    async def _stall(self, request: web.Request) -> web.Response:
        seconds = min(30.0, float(request.query.get("s", "3")))
        time.sleep(seconds)  # noqa: ASYNC251  (the point: block the loop)
        await asyncio.sleep(0)
        return web.json_response({"stalled_s": seconds})
