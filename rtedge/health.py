"""Local HTTP endpoint: /healthz /readyz /status /metrics, and push-to-talk over HTTP.

Everything here reads the one ``State``; nothing here holds a secret to leak. The metrics
collectors live in ``rtedge.metrics``; they and prometheus-client are imported at the first
scrape, so a device that no Prometheus scrapes never holds them (about 2 MB on a Pi).
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from aiohttp import web

from rtedge import __version__, httpguard
from rtedge.httpserver import LimitedSite, quiet_server_log, runner_kwargs
from rtedge.state import State

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

    from rtedge.metrics import Identity

log = logging.getLogger(__name__)

CONTENT_TYPE_LATEST = "text/plain; version=0.0.4; charset=utf-8"


class HealthServer:
    def __init__(
        self,
        state: State,
        host: str,
        port: int,
        *,
        on_press: Callable[[], Awaitable[dict[str, Any]]],
        on_release: Callable[[], Awaitable[dict[str, Any]]],
        extra_routes: list[Callable[[web.Application], None]] | None = None,
        identity: Identity | None = None,
        guard: httpguard.GuardPolicy | None = None,
        max_connections: int = 64,
        header_timeout_s: float = 5.0,
        status_extra: Callable[[], dict[str, Any]] | None = None,
    ) -> None:
        self._state = state
        self._host = host
        self._port = port
        self._on_press = on_press
        self._on_release = on_release
        self.ready = False
        self._status_extra = status_extra
        self._identity = identity
        self._registry: CollectorRegistry | None = None
        self._add_metrics: list[Callable[[CollectorRegistry], None]] = []
        self.guard = guard or httpguard.GuardPolicy.build(host)
        self.app = web.Application(
            middlewares=[httpguard.middleware(self.guard)],
            client_max_size=self.guard.max_body_bytes,
        )
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
        self._max_connections = max_connections
        self._header_timeout_s = header_timeout_s
        self._runner: web.AppRunner | None = None
        self.site: LimitedSite | None = None
        self.bound_port: int | None = None

    def add_metrics(self, register: Callable[[CollectorRegistry], None]) -> None:
        """``register`` adds collectors to the registry when it is built (at the first scrape)."""
        self._add_metrics.append(register)
        if self._registry is not None:
            register(self._registry)

    @property
    def registry(self) -> CollectorRegistry:
        if self._registry is None:
            from prometheus_client import CollectorRegistry

            from rtedge.metrics import HttpCollector, StateCollector

            registry = CollectorRegistry(auto_describe=True)
            registry.register(StateCollector(self._state, self._identity))
            registry.register(HttpCollector(self._http_refused))
            for register in self._add_metrics:
                register(registry)
            self._registry = registry
        return self._registry

    def _http_refused(self) -> dict[str, int]:
        site = self.site.refused() if self.site is not None else {}
        return {**self.guard.refused, **site}

    async def start(self) -> None:
        quiet_server_log()
        self._runner = web.AppRunner(
            self.app,
            access_log=None,
            handle_signals=False,
            **runner_kwargs(self._header_timeout_s),
        )
        await self._runner.setup()
        self.site = LimitedSite(
            self._runner,
            self._host,
            self._port,
            max_connections=self._max_connections,
            header_timeout_s=self._header_timeout_s,
        )
        self.bound_port = await self.site.start()
        log.info("health endpoint on http://%s:%s", self._host, self.bound_port)

    async def stop(self) -> None:
        if self.site is not None:
            await self.site.stop()
            self.site = None
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
        if self._status_extra is not None:
            data.update(self._status_extra())
        return web.json_response(data)

    async def _metrics(self, _: web.Request) -> web.Response:
        from prometheus_client import generate_latest

        body = generate_latest(self.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def _press(self, _: web.Request) -> web.Response:
        return web.json_response(await self._on_press())  # what the press did, not the before

    async def _release(self, _: web.Request) -> web.Response:
        return web.json_response(await self._on_release())

    async def _stall(self, request: web.Request) -> web.Response:
        seconds = min(30.0, float(request.query.get("s", "3")))
        time.sleep(seconds)  # noqa: ASYNC251  (the point: block the loop)
        await asyncio.sleep(0)
        return web.json_response({"stalled_s": seconds})
