"""The appliance: builds the parts, runs them, and stops them in order on SIGTERM."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import aiohttp
from aiohttp import web
from aiortc import MediaStreamTrack

from rtedge import __version__
from rtedge.audio import speaking
from rtedge.audio.alsalib import silence_alsa_lib_errors
from rtedge.audio.pipeline import AudioPipeline
from rtedge.binderr import describe_bind_error
from rtedge.controls.leds import StatusLed
from rtedge.controls.ptt import PushToTalk
from rtedge.health import HealthServer
from rtedge.httpguard import GuardPolicy
from rtedge.httpserver import install_loop_exception_handler
from rtedge.identity import Identity
from rtedge.kiosk import KioskPage
from rtedge.logs import event as log_event
from rtedge.logs import setup_logging
from rtedge.protocol.deprecations import model_warnings, shutdown_timestamp
from rtedge.realtime.call import Call
from rtedge.realtime.conversation import Conversation
from rtedge.realtime.ice import tune_consent, use_host_addresses
from rtedge.realtime.session_shape import build_session
from rtedge.realtime.signaling import Signaling
from rtedge.realtime.supervisor import Supervisor
from rtedge.settings import Settings, is_loopback_host
from rtedge.state import Connection, State
from rtedge.systemd import Notifier

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

    from rtedge.display.pipeline import DisplayPipeline

log = logging.getLogger("rtedge")

#: SIGTERM to exit: systemd's default stop timeout is 90 s; we promise 5.
SHUTDOWN_BUDGET_S = 4.5


class StartError(Exception):
    """The daemon cannot start; the message names the setting and the reason in one line."""


class Appliance:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.state = State(provider=settings.realtime.provider)
        rt = settings.realtime
        self.audio = AudioPipeline(
            settings.audio,
            self.state,
            hands_free=rt.hands_free,
            flush_holdoff_s=settings.audio.flush_holdoff_ms / 1000,
        )
        self.display: DisplayPipeline | None = None
        if settings.display.backend != "none":
            # Imported only here: a device without a display does not hold the display stack.
            from rtedge.display.pipeline import DisplayPipeline

            self.display = DisplayPipeline(
                settings.display,
                self.state,
                clock=self.audio.played_seconds,
                level=self.audio.speaker_level,
                onset=self.audio.speech_onset,
                # Arrival-to-speaker delay assumed for replies; a reply heard sooner lowers it,
                # nothing raises it (a later onset may be a lead-in: display/pacing.py).
                audio_delay_s=(settings.audio.playback_latency_ms + 2 * settings.audio.period_ms)
                / 1000
                + 0.02,
            )
        self.session = build_session(rt, want_images=self.display is not None)
        self.conversation = Conversation(
            self.state,
            self.audio,
            display=self.display,
            hands_free=rt.hands_free,
            log_transcripts=rt.log_transcripts,
            on_session_expired=self._session_expired,
            session=self.session,
        )
        self.ptt = PushToTalk(
            settings.ptt, self.conversation.press, self.conversation.release, state=self.state
        )
        self.led = StatusLed(settings.ptt, self.state)
        self.notifier = Notifier(self.state)
        routes: list[Callable[[web.Application], None]] = []
        if self.display is not None:
            routes.append(self.display.add_routes)
        if settings.display.kiosk_page:
            routes.append(KioskPage(self.state, settings).add_routes)
        self.health = HealthServer(
            self.state,
            settings.health.host,
            settings.health.port,
            on_press=self.ptt.press_over_http,
            on_release=self.ptt.release_over_http,
            extra_routes=routes,
            identity=Identity(
                version=__version__,
                device_id=settings.health.device_id,
                provider=rt.provider,
                model=rt.model,
                model_shutdown=shutdown_timestamp(rt.model),
            ),
            guard=GuardPolicy.build(
                settings.health.host,
                settings.health.allowed_hosts,
                settings.health.allowed_origins,
            ),
            max_connections=settings.health.max_connections,
            header_timeout_s=settings.health.header_timeout_s,
        )
        self.health.add_metrics(self._register_metrics)
        self._http: aiohttp.ClientSession | None = None
        self._bad_logged: dict[str, float] = {}
        self.supervisor: Supervisor | None = None

    def _register_metrics(self, registry: CollectorRegistry) -> None:
        from prometheus_client import ProcessCollector

        from rtedge.metrics import PartsCollector

        registry.register(
            PartsCollector(
                xruns=lambda: {
                    "capture": self.audio.capture.xruns,
                    "playback": self.audio.playback.xruns,
                },
                watchdog_withheld=lambda: self.notifier.skipped,
            )
        )
        # Resident memory, CPU seconds and start time (a restart shows as a new start time).
        ProcessCollector(registry=registry)

    def _session_expired(self) -> None:
        if self.supervisor is not None:
            self.supervisor.session_expired()

    def _make_call(self) -> Call:
        assert self._http is not None
        rt = self.settings.realtime
        on_video = None
        if self.display is not None and rt.provider == "rtav":
            on_video = self.display.consume_video
        return Call(
            rt,
            Signaling(rt, self._http),
            mic=self.audio.mic_track(),
            session=self.session,
            on_event=self.conversation.on_event,
            on_bad_event=self._bad_event,
            on_audio=self._play,
            on_video=on_video,
        )

    async def _play(self, track: MediaStreamTrack) -> None:
        await self.audio.play(track)

    def _bad_event(self, kind: str, detail: str) -> None:
        self.state.events_bad[kind] += 1
        # A storm of bad events must not become a storm of log lines: one per kind per 10 s.
        now = time.monotonic()
        if now - self._bad_logged.get(kind, 0.0) >= 10.0:
            self._bad_logged[kind] = now
            log_event(
                log,
                logging.WARNING,
                "bad_event",
                "bad event from the service (%s): %s [%d so far]",
                kind,
                detail[:200],
                self.state.events_bad[kind],
                kind=kind,
            )

    async def run(self, stop: asyncio.Event) -> None:
        rt = self.settings.realtime
        from urllib.parse import urlsplit

        if is_loopback_host(urlsplit(rt.url).hostname):
            use_host_addresses(["127.0.0.1"])  # aioice never offers loopback by itself
        tune_consent(rt.liveness_timeout_s)
        # First, before anything that would have to be stopped: a port in use is one line.
        try:
            await self.health.start()
        except OSError as exc:
            await self.health.stop()
            listen = self.settings.health.listen
            hint = "is rtedge already running? rtedge status asks it"
            raise StartError(
                describe_bind_error("health.listen", listen, exc, in_use_hint=hint)
            ) from None
        self._http = aiohttp.ClientSession()
        self.supervisor = Supervisor(
            self._make_call,
            self.conversation,
            self.state,
            self.settings.reconnect,
            connect_timeout_s=rt.connect_timeout_s,
            liveness_timeout_s=rt.liveness_timeout_s,
            rotate_after_s=rt.rotate_after_s,
        )
        tasks: list[asyncio.Task[Any]] = []
        try:
            await self.audio.start()
            for name, beat in self.audio.heartbeats().items():
                self.notifier.add_heartbeat(name, beat)
            if self.display is not None:
                await self.display.start()
            self.ptt.start()
            self.led.start()
            tasks.append(asyncio.create_task(self.supervisor.run(), name="supervisor"))
            voice = speaking.watch(
                self.audio.speaking, self.audio.speaker_level, self.conversation.on_voice
            )
            tasks.append(asyncio.create_task(voice, name="speaking"))
            tasks.append(asyncio.create_task(self.notifier.watchdog(), name="watchdog"))
            self.health.ready = True
            self.notifier.ready()
            log_event(log, logging.INFO, "ready", "rtedge ready, provider %s", rt.provider)
            for warning in model_warnings(self.session):
                log_event(log, logging.WARNING, "deprecated_model", "%s", warning)
            await stop.wait()
        finally:
            self.notifier.stopping()
            self.state.update(connection=Connection.STOPPING)
            log_event(log, logging.INFO, "stopping", "stopping")
            await self._shutdown(tasks)

    async def _shutdown(self, tasks: list[asyncio.Task[Any]]) -> None:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(BaseException):
                await task
        steps: list[Any] = []
        if self.supervisor is not None and self.supervisor.call is not None:
            self.supervisor.call.mark_dead("shutdown")
            steps.append(self.supervisor.call.close(hangup=True))
        self.ptt.close()
        self.led.close()
        if self.display is not None:
            steps.append(self.display.stop())
        steps.append(self.audio.stop())
        steps.append(self.health.stop())
        for step in steps:
            try:
                await asyncio.wait_for(step, timeout=SHUTDOWN_BUDGET_S / len(steps))
            except Exception as exc:  # shutdown goes on whatever one part does
                log_event(log, logging.WARNING, "shutdown_error", "shutdown step failed: %r", exc)
        if self._http is not None:
            await self._http.close()


async def _main(settings: Settings) -> int:
    loop = asyncio.get_running_loop()
    install_loop_exception_handler(loop)
    stop = asyncio.Event()
    # SIGHUP too: a terminal closed under `rtedge run` stops it in order (the call hung up).
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        loop.add_signal_handler(sig, stop.set)
    app = Appliance(settings)
    try:
        await app.run(stop)
    except (StartError, OSError) as exc:
        log_event(log, logging.ERROR, "start_failed", "cannot start: %s", exc)
        return 1
    return 0


def run(settings: Settings) -> int:
    setup_logging(settings.logging.level, settings.health.device_id)
    silence_alsa_lib_errors()
    return asyncio.run(_main(settings))
