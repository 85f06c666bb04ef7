"""The appliance: builds the parts, runs them, and stops them in order on SIGTERM."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import aiohttp
from aiohttp import web

from rtedge import __version__
from rtedge.app_calls import CallMaker
from rtedge.audio.alsalib import silence_alsa_lib_errors
from rtedge.audio.pipeline import AudioPipeline
from rtedge.audio.wake import WakeError
from rtedge.binderr import describe_bind_error
from rtedge.controls.handsfree import HandsFree
from rtedge.controls.handsfree_live import LiveTurns
from rtedge.controls.leds import StatusLed
from rtedge.controls.ptt import PushToTalk
from rtedge.health import HealthServer
from rtedge.httpguard import GuardPolicy
from rtedge.httpserver import install_loop_exception_handler
from rtedge.identity import Identity
from rtedge.kiosk import KioskPage
from rtedge.live.conversation import LiveConversation
from rtedge.live.delegation import DeviceTools, tool_schemas
from rtedge.live.memory import LiveMemory
from rtedge.live.signaling import build_session as build_live_session
from rtedge.live.usage import LiveUsage
from rtedge.logs import event as log_event
from rtedge.logs import setup_logging
from rtedge.protocol.deprecations import model_warnings, shutdown_timestamp
from rtedge.protocol.server import ServerEvent
from rtedge.realtime.continuity import Continuity
from rtedge.realtime.conversation import Conversation
from rtedge.realtime.history import History
from rtedge.realtime.session_shape import build_session
from rtedge.realtime.supervisor import Supervisor
from rtedge.rtc.ice import tune_consent, use_host_addresses
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
        wake = settings.wake
        try:
            self.audio = AudioPipeline(
                settings.audio,
                self.state,
                # with the wake word the mic stays closed until it is heard, also hands-free
                hands_free=rt.hands_free and not wake.enabled,
                flush_holdoff_s=settings.audio.flush_holdoff_ms / 1000,
                wake=wake,
            )
        except (WakeError, ImportError, OSError) as exc:
            raise StartError(f"audio front end (wake/echo_cancel): {exc}") from None
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
        self.live_usage = LiveUsage()
        self.conversation: Conversation | LiveConversation
        if rt.provider == "live":  # GPT-Live: its own session shape and turn logic
            self.session = build_live_session(rt, tools=tool_schemas(rt.live.tools))
            self.conversation = LiveConversation(
                self.state,
                self.audio,
                self.live_usage,
                log_transcripts=rt.log_transcripts,
                run_tool=DeviceTools(self.state),
            )
        else:
            self.session = build_session(rt, want_images=self.display is not None)
            self.conversation = self._realtime_conversation()
        memory = settings.conversation
        self.continuity = Continuity(
            self.state,
            History(memory.max_items, memory.max_chars),
            forget_after_idle_s=memory.forget_after_idle_s,
            show_text=rt.log_transcripts,
            is_unasked=self.conversation.unasked,
            on_forget=self._renew_session,
        )
        # Live: its transcripts make the turns, and each new session starts with them
        self.live_memory: LiveMemory | None = None
        if isinstance(self.conversation, LiveConversation):
            self.live_memory = LiveMemory(self.continuity, self.state)
            self.conversation.on_reply_end = self.live_memory.reply_ended
        self.hands_free: HandsFree | None = None
        on_press, on_release = self.conversation.press, self.conversation.release
        frontend = self.audio.frontend
        if frontend is not None and frontend.gate is not None:
            self.audio.talking = False  # the wake word opens the mic, not hands_free
            conv = self.conversation
            # on Live, the wake gate's turns are its input mute
            turns = LiveTurns(conv) if isinstance(conv, LiveConversation) else conv
            self.hands_free = HandsFree(
                wake, self.audio, turns, self.state, service_vad=rt.hands_free
            )
            if isinstance(turns, LiveTurns):
                turns.on_answer = self.hands_free.answered_during_turn
            on_press, on_release = self.hands_free.press, self.hands_free.release
        self._on_press = on_press
        self.ptt = PushToTalk(
            settings.ptt,
            self._press,
            on_release,
            state=self.state,
            on_long_press=self._long_press,
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
            extra_routes=[self.continuity.add_routes, *routes],
            status_extra=lambda: {"history": self.continuity.summary()},
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
        self.calls = CallMaker(
            rt,
            self.state,
            self.audio,
            session=self.session,
            on_event=self._on_event,
            live_memory=self.live_memory,
            on_video=self.display.consume_video if self.display is not None else None,
        )
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
        if self.audio.frontend is not None:
            from rtedge.controls.handsfree_metrics import FrontendCollector

            registry.register(FrontendCollector(self.audio.frontend, self.hands_free))
        from rtedge.live.usage_metrics import LiveUsageCollector

        registry.register(LiveUsageCollector(self.live_usage, self.state.delegations))
        # Resident memory, CPU seconds and start time (a restart shows as a new start time).
        ProcessCollector(registry=registry)

    def _realtime_conversation(self) -> Conversation:
        rt = self.settings.realtime
        return Conversation(
            self.state,
            self.audio,
            display=self.display,
            hands_free=rt.hands_free,
            log_transcripts=rt.log_transcripts,
            on_session_expired=self._session_expired,
            session=self.session,
        )

    def _session_expired(self) -> None:
        if self.supervisor is not None:
            self.supervisor.session_expired()

    def _renew_session(self) -> None:
        if self.supervisor is not None:
            self.supervisor.renew()

    def _press(self) -> None:
        if self.supervisor is not None:
            self.supervisor.switch_if_due()  # a press at a due rotation lands on the next call
        self._on_press()

    def _long_press(self) -> None:
        self.conversation.abandon()
        self.continuity.forget("long press")

    def _on_event(self, event: ServerEvent) -> None:
        self.continuity.on_event(event)  # first: it asks the conversation about this reply
        if self.live_memory is not None:
            self.live_memory.on_event(event)
        self.conversation.on_event(event)

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
        self.calls.http = aiohttp.ClientSession()
        self.supervisor = Supervisor(
            self.calls.make,
            self.conversation,
            self.state,
            self.settings.reconnect,
            connect_timeout_s=rt.connect_timeout_s,
            liveness_timeout_s=rt.liveness_timeout_s,
            rotate_after_s=rt.rotate_after_s,
            # Live takes its history at creation (session.input), not as items afterwards
            seeder=self.live_memory or self.continuity,
            make_before_break=rt.make_before_break and rt.provider != "live",
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
            if self.hands_free is not None:
                self.hands_free.start()
            tasks.append(asyncio.create_task(self.supervisor.run(), name="supervisor"))
            self.audio.voice.start(self.conversation.on_voice)
            tasks.append(asyncio.create_task(self.notifier.watchdog(), name="watchdog"))
            tasks.append(asyncio.create_task(self.continuity.run(), name="forget"))
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
        if self.hands_free is not None:
            await self.hands_free.stop()
        if self.display is not None:
            steps.append(self.display.stop())
        steps.append(self.audio.stop())
        steps.append(self.health.stop())
        for step in steps:
            try:
                await asyncio.wait_for(step, timeout=SHUTDOWN_BUDGET_S / len(steps))
            except Exception as exc:  # shutdown goes on whatever one part does
                log_event(log, logging.WARNING, "shutdown_error", "shutdown step failed: %r", exc)
        await self.calls.aclose()


async def _main(settings: Settings) -> int:
    loop = asyncio.get_running_loop()
    install_loop_exception_handler(loop)
    stop = asyncio.Event()
    # SIGHUP too: a terminal closed under `rtedge run` stops it in order (the call hung up).
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        loop.add_signal_handler(sig, stop.set)
    try:
        app = Appliance(settings)
        await app.run(stop)
    except (StartError, OSError) as exc:
        log_event(log, logging.ERROR, "start_failed", "cannot start: %s", exc)
        return 1
    return 0


def run(settings: Settings) -> int:
    setup_logging(settings.logging.level, settings.health.device_id)
    silence_alsa_lib_errors()
    return asyncio.run(_main(settings))
