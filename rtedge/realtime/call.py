"""One WebRTC call: the peer connection, the event channel, the tracks, and when it was last alive.

aiortc has no ICE restart and never reports "disconnected", so a call is either up or dead: it is
dead when its data channel closes, its connection fails, or the supervisor's liveness check says
so. A dead call is closed whole and a new one built (supervisor.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiortc import (
    MediaStreamTrack,
    RTCConfiguration,
    RTCDataChannel,
    RTCIceServer,
    RTCPeerConnection,
    RTCSessionDescription,
)

from rtedge.protocol.codec import EventError, encode
from rtedge.protocol.server import ServerEvent, decode_server_event
from rtedge.ratelimit import TokenBucket
from rtedge.realtime import sctpcap
from rtedge.realtime.signaling import Signaling
from rtedge.rtc import jitter
from rtedge.settings import RealtimeSettings

log = logging.getLogger(__name__)

#: A message larger than this is not even parsed (a broken or hostile service); the SCTP
#: reassembly refuses it once it passes this size, before it is whole (sctpcap.py).
MAX_EVENT_BYTES = 1 << 20
#: Events per second a service may send on average (and in one burst); beyond, events are
#: dropped undecoded and counted ``rate_limited``. A real service sends tens per second; the
#: fault suite's 1000/s storm stays inside.
EVENT_RATE = 2000.0
EVENT_BURST = 2000.0

TrackConsumer = Callable[[MediaStreamTrack], Awaitable[None]]


class _WatchedTrack(MediaStreamTrack):
    """Passes a remote track through, noting when each frame arrived (our own liveness)."""

    def __init__(
        self,
        inner: MediaStreamTrack,
        on_frame: Callable[[], None],
        held: Callable[[], bool] = lambda: False,
    ) -> None:
        super().__init__()
        self.kind = inner.kind
        self._inner = inner
        self._on_frame = on_frame
        self._held = held

    async def recv(self) -> Any:
        while True:
            frame = await self._inner.recv()
            self._on_frame()
            if not self._held():  # a held call's audio is drained, not played
                return frame


class Call:
    #: How a data-channel message becomes an event (GPT-Live has its own: rtedge.live.events).
    decode: Callable[[str | bytes], ServerEvent] = staticmethod(decode_server_event)

    def __init__(
        self,
        settings: RealtimeSettings,
        signaling: Signaling,
        *,
        mic: MediaStreamTrack,
        session: dict[str, Any],
        on_event: Callable[[ServerEvent], None],
        on_bad_event: Callable[[str, str], None],
        on_audio: TrackConsumer,
        on_video: TrackConsumer | None = None,
    ) -> None:
        self._settings = settings
        self._signaling = signaling
        self._mic = mic
        self._session = session
        self._on_event = on_event
        self._on_bad_event = on_bad_event
        self._on_audio = on_audio
        self._on_video = on_video
        self._pc: RTCPeerConnection | None = None
        self._dc: RTCDataChannel | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._dead = asyncio.Event()
        self.dead_reason: str | None = None
        self.call_id: str | None = None
        self.opened_at: float | None = None
        now = time.monotonic()
        self.last_event = now
        self.last_rtp = now
        self._event_budget = TokenBucket(EVENT_RATE, EVENT_BURST)
        self._unhandled_logged = False
        self._held = False
        #: When the service will end the session (monotonic), if it says (GPT-Live's
        #: ``expires_at``): the supervisor rotates ahead of it (rtedge.realtime.handover).
        self.expires_at: float | None = None

    @property
    def held(self) -> bool:
        """A call prepared ahead (rtedge.realtime.handover) or being retired: it stays alive,
        but its events are not the conversation's, its audio and video are not played, and
        its mic track (when it can be muted) carries silence."""
        return self._held

    @held.setter
    def held(self, value: bool) -> None:
        self._held = value
        if hasattr(self._mic, "muted"):
            setattr(self._mic, "muted", value)  # noqa: B010  (any track with a mute switch)

    @property
    def is_dead(self) -> bool:
        return self._dead.is_set()

    def mark_dead(self, reason: str) -> None:
        if not self._dead.is_set():
            self.dead_reason = reason
            self._dead.set()

    async def wait_dead(self) -> str:
        await self._dead.wait()
        return self.dead_reason or "closed"

    async def open(self) -> None:
        """Negotiate the call and wait until its event channel is open. Raises on failure;
        the caller bounds the time (``connect_timeout_s``)."""
        s = self._settings
        servers = [RTCIceServer(urls=url) for url in s.ice_servers]
        pc = RTCPeerConnection(RTCConfiguration(iceServers=servers))
        self._pc = pc
        # The channel and the mic go in before the offer so it has m=application and m=audio.
        dc = pc.createDataChannel(s.channel_label, ordered=True)
        self._dc = dc
        opened = asyncio.Event()
        dc.on("open", opened.set)
        dc.on("close", lambda: self.mark_dead("data channel closed"))
        dc.on("message", self._on_message)
        if pc.sctp is not None:
            sctpcap.install(pc.sctp, MAX_EVENT_BYTES, self._refused_in_reassembly)
        pc.addTrack(self._mic)
        if s.audio_jitter_buffer == "rtedge":
            for transceiver in pc.getTransceivers():
                if transceiver.kind == "audio":
                    jitter.install(
                        transceiver.receiver, jitter.AudioJitterBuffer(s.audio_reorder_packets)
                    )
        if self._on_video is not None:
            pc.addTransceiver("video", direction="recvonly")

        @pc.on("track")
        def _on_track(track: MediaStreamTrack) -> None:
            if track.kind == "audio":
                watched = _WatchedTrack(track, self._touch_rtp, lambda: self.held)
                self._spawn(self._on_audio(watched))
            elif self._on_video is not None:
                self._spawn(self._on_video(_WatchedTrack(track, _nothing, lambda: self.held)))
            else:
                self._spawn(_drain(track))  # unasked-for media must still be drained

        @pc.on("connectionstatechange")
        def _on_state() -> None:
            if pc.connectionState in ("failed", "closed"):
                self.mark_dead(f"connection {pc.connectionState}")

        await pc.setLocalDescription(await pc.createOffer())
        answer = await self._signaling.create_call(pc.localDescription.sdp, self._session)
        self.call_id = answer.call_id
        await pc.setRemoteDescription(RTCSessionDescription(sdp=answer.sdp, type="answer"))
        dead = asyncio.ensure_future(self._dead.wait())
        try:
            await asyncio.wait(
                [asyncio.ensure_future(opened.wait()), dead], return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            dead.cancel()
        if self.is_dead:
            raise ConnectionError(self.dead_reason or "call died while opening")
        self.opened_at = time.monotonic()
        self.last_event = self.last_rtp = self.opened_at

    def send(self, event: dict[str, Any]) -> bool:
        dc = self._dc
        if dc is None or dc.readyState != "open" or self.is_dead:
            return False
        try:
            dc.send(encode(event))
        except Exception as exc:  # aiortc raises ValueError past the remote's size cap
            log.warning("could not send %s: %s", event.get("type"), exc)
            return False
        return True

    def _touch_rtp(self) -> None:
        self.last_rtp = time.monotonic()

    def _refused_in_reassembly(self, size: int) -> None:
        self.last_event = time.monotonic()
        self._on_bad_event("oversized", f"over {MAX_EVENT_BYTES} bytes, refused at {size}")

    def _on_message(self, message: str | bytes) -> None:
        # aiortc calls this from its SCTP receive path: an exception escaping here tears the
        # DTLS transport down, so nothing may (RecursionError from deep JSON, MemoryError...).
        try:
            self._handle_message(message)
        except Exception as exc:
            if not self._unhandled_logged:  # once per call: a storm of them is one line
                self._unhandled_logged = True
                log.exception("event not handled")
            with contextlib.suppress(Exception):
                self._on_bad_event("handler_error", type(exc).__name__)

    def _handle_message(self, message: str | bytes) -> None:
        self.last_event = time.monotonic()
        if not self._event_budget.allow():
            self._on_bad_event("rate_limited", f"over {EVENT_RATE:.0f} events/s")
            return
        try:
            decoded = self.decode(message)
        except EventError as exc:
            self._on_bad_event(exc.kind, exc.detail)
            return
        except (RecursionError, ValueError, TypeError) as exc:
            # Deeper than the decoder's own limits, or a shape it did not expect.
            self._on_bad_event("undecodable", type(exc).__name__)
            return
        if self.held:
            return
        try:
            self._on_event(decoded)
        except Exception:
            # A bug in one handler must not take the call down with it.
            log.exception("handling %s failed", decoded.type)
            self._on_bad_event("handler_error", decoded.type)

    def _spawn(self, coro: Awaitable[None]) -> None:
        async def guarded() -> None:
            try:
                await coro
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("track consumer failed")

        task = asyncio.ensure_future(guarded())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self, *, hangup: bool = True) -> None:
        self.mark_dead(self.dead_reason or "closed")
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(BaseException):
                await task
        # A rotated call is alive: hang it up while the service still knows it (a server that
        # drops a call as soon as its DTLS closes would answer a later hangup 404).
        early = hangup and self.call_id is not None and self.dead_reason == "rotation"
        if early and self.call_id:
            await self._signaling.hangup(self.call_id, "rotation")
        if self._pc is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._pc.close(), timeout=2.0)
        if hangup and not early and self.call_id:
            await self._signaling.hangup(self.call_id, self.dead_reason or "closed")


def _nothing() -> None:
    pass


async def _drain(track: MediaStreamTrack) -> None:
    with contextlib.suppress(Exception):
        while True:
            await track.recv()
