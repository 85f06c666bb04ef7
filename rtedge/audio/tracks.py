"""The aiortc side of the audio: the microphone track we send and the sink that drains the
remote track into the speaker."""

from __future__ import annotations

import asyncio
import collections
import logging
from collections.abc import Callable
from typing import Any

import av
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from rtedge.media.dsp import FRAME_SAMPLES, SILENCE_RMS, TIME_BASE, WEBRTC_RATE, Converter, rms

log = logging.getLogger(__name__)

FRAME_S = FRAME_SAMPLES / WEBRTC_RATE


def _wake(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


class MicTrack(MediaStreamTrack):
    """20 ms Opus packets (``av.Packet``, mono 48 kHz): the microphone while push-to-talk is
    held, digital silence otherwise, encoded on the capture thread (``rtedge.audio.opus``), so
    aiortc's sender only packetizes them. Paced by the capture clock; when capture delivers
    nothing (device missing or stalled) it falls back to the wall clock with a silent packet,
    so RTP never stops.

    Packets are pushed in by the pipeline on the event loop (``push``); the queue is bounded
    and drops the oldest, counting it through ``on_drop``.
    """

    kind = "audio"

    def __init__(
        self,
        *,
        silence: bytes,
        capture_live: Callable[[], bool],
        on_drop: Callable[[int], None],
        on_stop: Callable[[MicTrack], None],
        max_queue: int = 5,
    ) -> None:
        super().__init__()
        self._silence = silence
        self._capture_live = capture_live
        self._on_drop = on_drop
        self._on_stop = on_stop
        self._queue: collections.deque[tuple[bytes, bool]] = collections.deque()
        self._max_queue = max_queue
        self._waiter: asyncio.Future[None] | None = None
        self._pts = 0
        self._last: float | None = None
        self._synthetic = False
        self._started = False
        self.frames_sent = 0
        self.frames_live = 0  # frames that carried the microphone (gate open)
        self.frames_synthetic = 0
        #: A call prepared ahead (make-before-break) must not hear the user talk to the call
        #: before it: while muted, its track carries digital silence.
        self.muted = False

    def push(self, packet: bytes, live: bool) -> None:
        """One 20 ms Opus packet from the capture thread (called on the loop); ``live``: it
        carries the microphone (push-to-talk held), else silence."""
        if not self._started or self.readyState != "live":
            return  # nobody reads yet (call still connecting): nothing to queue up
        if self.muted and live:
            packet, live = self._silence, False
        self._queue.append((packet, live))
        if len(self._queue) > self._max_queue:
            self._queue.popleft()
            self._on_drop(1)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def recv(self) -> av.Packet[Any]:
        if self.readyState != "live":
            raise MediaStreamError
        loop = asyncio.get_running_loop()
        self._started = True
        if self._last is None:
            self._last = loop.time() - FRAME_S
        data: tuple[bytes, bool] | None = None
        while True:
            if self._queue:
                data = self._queue.popleft()
                break
            now = loop.time()
            slack = FRAME_S if self._synthetic or not self._capture_live() else 3 * FRAME_S
            deadline = self._last + slack
            if now >= deadline:
                break
            # a bare future and one timer: this runs for every frame (asyncio.timeout() costs
            # several times as much)
            waiter = self._waiter = loop.create_future()
            timer = loop.call_at(deadline, _wake, waiter)
            try:
                await waiter
            finally:
                timer.cancel()
                self._waiter = None
            if self.readyState != "live":
                raise MediaStreamError
        now = loop.time()
        if data is None:
            # wall clock: one period after the last frame, resynchronised after a long gap
            self._synthetic = True
            self.frames_synthetic += 1
            self._last = self._last + FRAME_S if now - self._last < 3 * FRAME_S else now
            payload = self._silence
        else:
            self._synthetic = False
            self._last = now
            payload, live = data
            if live:
                self.frames_live += 1
            if not payload:
                payload = self._silence
        packet = av.Packet(payload)
        packet.pts = self._pts
        packet.time_base = TIME_BASE
        self._pts += FRAME_SAMPLES
        self.frames_sent += 1
        return packet

    def stop(self) -> None:
        if self.readyState == "live":
            super().stop()
            self._on_stop(self)
            waiter = self._waiter
            if waiter is not None and not waiter.done():
                waiter.set_result(None)


class SpeakerSink:
    """Drains one remote audio track: every frame is received (aiortc would otherwise grow
    without bound), converted once to the speaker's rate/channels and handed to ``push``.

    After ``mute_in_flight()`` (a barge-in flush) incoming audio is discarded until the remote
    stream goes quiet (a silent frame, or a run of them as long as asked, or a gap of three
    periods) or ``holdoff_s`` passes, so audio already in flight from the cancelled response is
    not played. Both are judged on the stream's clock (the frames' timestamps; arrival only for
    frames without one): when this loop is held up, the frames in flight arrive late and at
    once, and that is no gap.
    """

    def __init__(
        self,
        track: MediaStreamTrack,
        *,
        rate: int,
        channels: int,
        push: Callable[[Any], None],
        holdoff_s: float = 0.5,
    ) -> None:
        self.track = track
        self._converter = Converter(WEBRTC_RATE, 2, rate, channels)
        self._push = push
        self.holdoff_s = holdoff_s
        self._muted = False
        self.held = False  # GPT-Live barge-in: everything is discarded while the button is down
        self._mute_until: float | None = None  # stream time, set by the first frame muted
        self._mute_holdoff = holdoff_s
        self._quiet_needed = 0.0  # seconds of quiet stream that end the mute
        self._quiet_from: float | None = None  # stream time the current quiet run began
        self._last: float | None = None  # stream time of the last frame
        self.frames_in = 0
        self.frames_discarded = 0

    def mute_in_flight(self, quiet_s: float = 0.0, holdoff_s: float | None = None) -> None:
        """Discard what arrives until the stream has been quiet for ``quiet_s`` (0: one quiet
        frame) or ``holdoff_s`` (default: the sink's) has passed on the stream's clock."""
        self._muted = True
        self._mute_until = None
        self._mute_holdoff = self.holdoff_s if holdoff_s is None else holdoff_s
        self._quiet_needed = quiet_s
        self._quiet_from = None

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                frame = await self.track.recv()
            except MediaStreamError:
                return
            at = _stream_time(frame, loop.time())
            gap = None if self._last is None else at - self._last
            self._last = at
            self.frames_in += 1
            samples = self._converter.convert_frame(frame)
            if self.held:
                self.frames_discarded += 1
                continue
            if self._muted:
                if self._mute_until is None:
                    self._mute_until = at + self._mute_holdoff
                if gap is not None and gap > 3 * FRAME_S:
                    quiet = True  # the stream stopped: whatever comes now is new
                elif rms(samples) < SILENCE_RMS:
                    if self._quiet_from is None:
                        self._quiet_from = at
                    quiet = at + FRAME_S - self._quiet_from >= self._quiet_needed - 1e-6
                else:
                    self._quiet_from = None
                    quiet = False
                if quiet or at >= self._mute_until:
                    self._muted = False
                else:
                    self.frames_discarded += 1
                    continue
            self._push(samples)


def _stream_time(frame: Any, arrival: float) -> float:
    """Seconds on the sender's clock (the RTP timestamps of an ``av.AudioFrame``), or the
    arrival time without one."""
    pts, time_base = frame.pts, frame.time_base
    if pts is None or time_base is None:
        return arrival
    # in integers, not Fractions: this runs for every frame
    return float(pts * time_base.numerator / time_base.denominator)


__all__ = ["FRAME_S", "FRAME_SAMPLES", "MicTrack", "SpeakerSink"]
