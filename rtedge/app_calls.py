"""The supervisor's call factory: a Realtime or GPT-Live call, its audio, its bad events counted.

Every call shares one HTTP client; a bad event is counted and its log line rate-limited per kind.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import aiohttp
from aiortc import MediaStreamTrack

from rtedge.audio.pipeline import AudioPipeline
from rtedge.live.call import LiveCall
from rtedge.live.delegation import tool_schemas
from rtedge.live.memory import LiveMemory
from rtedge.live.signaling import LiveSignaling
from rtedge.live.signaling import build_session as build_live_session
from rtedge.logs import event as log_event
from rtedge.protocol.server import ServerEvent
from rtedge.realtime.call import Call, TrackConsumer
from rtedge.realtime.signaling import Signaling
from rtedge.settings import RealtimeSettings
from rtedge.state import State

log = logging.getLogger("rtedge")

#: One log line per kind of bad event in this long: a storm of them is counted, not logged.
BAD_EVENT_LOG_S = 10.0


class CallMaker:
    """``make()`` is the supervisor's call factory; ``http`` is set while the appliance runs."""

    def __init__(
        self,
        settings: RealtimeSettings,
        state: State,
        audio: AudioPipeline,
        *,
        session: dict[str, Any],
        on_event: Callable[[ServerEvent], None],
        live_memory: LiveMemory | None = None,
        on_video: TrackConsumer | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._rt = settings
        self._state = state
        self._audio = audio
        self._session = session
        self._on_event = on_event
        self._live_memory = live_memory
        self._on_video = on_video
        self._clock = clock
        self.http: aiohttp.ClientSession | None = None
        self._bad_logged: dict[str, float] = {}

    def make(self) -> Call:
        assert self.http is not None
        rt = self._rt
        if rt.provider == "live":
            memory = self._live_memory
            return LiveCall(
                rt,
                LiveSignaling(rt, self.http),
                mic=self._audio.mic_track(),
                # a new session takes the conversation so far at creation (session.input)
                session=build_live_session(
                    rt, memory.session_input(), tools=tool_schemas(rt.live.tools)
                )
                if memory is not None
                else self._session,
                on_event=self._on_event,
                on_bad_event=self.bad_event,
                on_audio=self._play,
                live_settings=rt.live,
            )
        return Call(
            rt,
            Signaling(rt, self.http),
            mic=self._audio.mic_track(),
            session=self._session,
            on_event=self._on_event,
            on_bad_event=self.bad_event,
            on_audio=self._play,
            on_video=self._on_video if rt.provider == "rtav" else None,
        )

    async def _play(self, track: MediaStreamTrack) -> None:
        await self._audio.play(track)

    def bad_event(self, kind: str, detail: str) -> None:
        self._state.events_bad[kind] += 1
        # A storm of bad events must not become a storm of log lines: one per kind per 10 s.
        now = self._clock()
        last = self._bad_logged.get(kind)
        if last is None or now - last >= BAD_EVENT_LOG_S:
            self._bad_logged[kind] = now
            log_event(
                log,
                logging.WARNING,
                "bad_event",
                "bad event from the service (%s): %s [%d so far]",
                kind,
                detail[:200],
                self._state.events_bad[kind],
                kind=kind,
            )

    async def aclose(self) -> None:
        if self.http is not None:
            await self.http.close()
