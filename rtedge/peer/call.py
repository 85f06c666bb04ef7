"""One WebRTC call: the RTCPeerConnection, the events data channel, the tracks, the timers, and the
session that drives them. Everything the call starts is owned here and released by ``close``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine
from typing import Any, Final

from aiortc import (
    MediaStreamTrack,
    RTCConfiguration,
    RTCDataChannel,
    RTCPeerConnection,
    RTCSessionDescription,
)
from aiortc.mediastreams import MediaStreamError
from av import AudioFrame

from rtedge.peer import hostile, wire
from rtedge.peer.audio_in import RATE as INPUT_RATE
from rtedge.peer.audio_in import downmix
from rtedge.peer.config import PeerConfig
from rtedge.peer.faults import CallFault
from rtedge.peer.live_session import LiveSession
from rtedge.peer.offer import InvalidOffer, check_offer
from rtedge.peer.record import CallRecord
from rtedge.peer.session import Session
from rtedge.peer.voice import Voice
from rtedge.protocol.codec import encode
from rtedge.rtc import jitter

JsonDict = dict[str, Any]
PENDING_MAX: Final = 256  # events queued before the data channel opens
FLUSH_WAIT_S: Final = 1.0  # time allowed for a last event to leave before closing

log = logging.getLogger(__name__)


class Call:
    def __init__(
        self,
        config: PeerConfig,
        voice: Voice,
        effective: JsonDict,
        on_end: Callable[[Call], None],
        live: bool = False,
    ) -> None:
        self.config = config
        self.id = wire.new_id("rtc", 16)
        self.session_id = str(effective["id"])
        self.record = CallRecord(self.id, self.session_id)
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.tasks: set[asyncio.Task[None]] = set()
        self.session: Session | LiveSession
        if live:  # GPT-Live: the session resource is the create request's, started on open
            self.session = LiveSession(
                config, voice, self.record, effective, self._send, self.spawn, self.close_soon
            )
        else:
            self.session = Session(config, voice, self.record, effective, self._send, self.spawn)
        self.channel: RTCDataChannel | None = None
        self._pending: list[str] = []
        self._on_end = on_end
        self._timers: list[asyncio.TimerHandle] = []
        self._closing: asyncio.Task[None] | None = None
        self._ended = asyncio.Event()
        self.ended = False
        self._receive_buffer: jitter.AudioJitterBuffer | None = None

    # -- tasks ----------------------------------------------------------------------------
    def spawn(self, coro: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
        """Start a task owned by this call (cancelled and awaited by ``close``)."""
        if self.ended:
            coro.close()
            raise RuntimeError("call has ended")
        task = asyncio.get_running_loop().create_task(coro, name=f"{self.id}:{name}")
        self.tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self.tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("call %s task %s failed", self.id, task.get_name(), exc_info=task.exception())

    # -- signaling --------------------------------------------------------------------------
    async def answer(self, offer_sdp: str) -> str:
        """Answer the client's offer (ICE gathering included); raises InvalidOffer."""
        check_offer(offer_sdp)
        pc = self.pc
        pc.on("datachannel", self._on_datachannel)
        pc.on("track", self._on_track)
        pc.on("connectionstatechange", self._on_connection_state)
        try:
            await pc.setRemoteDescription(RTCSessionDescription(offer_sdp, "offer"))
        except Exception as exc:
            raise InvalidOffer(str(exc)) from exc
        # Answerer: our audio goes on the transceiver the offer created (addTrack after
        # setRemoteDescription reuses it). An offer without audio gets no track.
        audio = [t for t in pc.getTransceivers() if t.kind == "audio"]
        if audio:
            pc.addTrack(self.session.output)
        if self.config.jitter_buffer == "rtedge":
            # before the transport connects: no packet has reached the receiver yet
            for transceiver in audio:
                buffer = jitter.AudioJitterBuffer()
                if jitter.install(transceiver.receiver, buffer):
                    self._receive_buffer = buffer
        self.record.receive_buffer["kind"] = (
            "rtedge" if self._receive_buffer is not None else "aiortc"
        )
        try:
            answer = await pc.createAnswer()
            await pc.setLocalDescription(answer)
        except Exception as exc:
            raise InvalidOffer(str(exc)) from exc
        loop = asyncio.get_running_loop()
        self._timers.append(loop.call_later(self.config.max_session_s, self._expire))
        self._timers.append(loop.call_later(self.config.connect_timeout_s, self._connect_timeout))
        return str(pc.localDescription.sdp)

    def _on_connection_state(self) -> None:
        state = self.pc.connectionState
        self.record.connection_state = state
        if state in ("failed", "closed"):
            self.close_soon(f"connection_{state}")

    def _connect_timeout(self) -> None:
        if self.pc.connectionState != "connected":
            self.close_soon("connect_timeout")

    def _expire(self) -> None:
        if isinstance(self.session, LiveSession):
            self.session.expire()  # session.closed reason "expired"
            return
        minutes, seconds = divmod(int(self.config.max_session_s), 60)
        limit = (
            f"{minutes} minutes" if seconds == 0 else f"{int(self.config.max_session_s)} seconds"
        )
        self.session.send(
            wire.error_event(
                f"Your session hit the maximum duration of {limit}.", "session_expired", None
            )
        )
        self.close_soon("session_expired", flush=True)

    # -- data channel -------------------------------------------------------------------------
    def _on_datachannel(self, channel: RTCDataChannel) -> None:
        if self.channel is not None:
            # Only the first channel carries events; others are drained and ignored.
            log.info("call %s: extra data channel %r ignored", self.id, channel.label)
            return
        self.channel = channel
        self.record.label = channel.label
        channel.on("message", self.session.handle_message)
        if channel.readyState == "open":
            self._on_open()
        else:
            channel.on("open", self._on_open)

    def _on_open(self) -> None:
        pending, self._pending = self._pending, []
        self.session.session_created()
        for text in pending:
            self._deliver(text)

    def _send(self, event: JsonDict) -> None:
        text = encode(event)
        channel = self.channel
        if channel is None or channel.readyState == "connecting":
            if len(self._pending) < PENDING_MAX:
                self._pending.append(text)
            return
        self._deliver(text)

    def _deliver(self, text: str) -> None:
        channel = self.channel
        if channel is None or channel.readyState != "open":
            return
        try:
            channel.send(text)
        except Exception as exc:  # InvalidStateError, or ValueError over max-message-size
            log.warning("call %s: event not sent: %s", self.id, exc)

    # -- media ----------------------------------------------------------------------------------
    def _on_track(self, track: MediaStreamTrack) -> None:
        if track.kind == "audio":
            self.spawn(self._read_audio(track), "audio-in")
        else:
            self.spawn(self._drain(track), f"{track.kind}-in")

    async def _read_audio(self, track: MediaStreamTrack) -> None:
        # Every remote track is drained, always: aiortc queues frames without bound otherwise.
        failures = 0
        while True:
            try:
                frame = await track.recv()
            except MediaStreamError:
                return
            if not isinstance(frame, AudioFrame):
                continue
            try:
                self.session.push_audio(downmix(frame))
            except Exception:
                # Keep draining whatever happens: a stopped reader lets aiortc queue forever.
                failures += 1
                if failures == 1:  # once per call, not 50 times a second
                    log.exception("call %s: input audio frame failed", self.id)

    async def _drain(self, track: MediaStreamTrack) -> None:
        while True:
            try:
                await track.recv()
            except MediaStreamError:
                return

    # -- faults ------------------------------------------------------------------------------------
    def apply_fault(self, fault: CallFault) -> str:
        """Apply one call fault now; returns a short description of what was done."""
        self.record.faults.append(fault.kind)
        kind = fault.kind
        if kind == "close_datachannel":
            if self.channel is None:
                return "no data channel"
            self.channel.close()
        elif kind == "stop_rtp":
            self.session.output.pause()
        elif kind == "resume_rtp":
            self.session.output.resume()
        elif kind == "drop_connection":
            self.close_soon("fault:drop_connection")
        elif kind == "malformed_event":
            self._deliver('{"type": "response.done", "event_id": "event_malformed", ')
        elif kind == "unknown_event":
            self.session.send({"type": "rtedge.test.unknown_event", "note": "injected fault"})
        elif kind == "oversized_event":
            return self._send_oversized(fault.size)
        elif kind == "event_storm":
            self.spawn(self._storm(fault.rate, fault.seconds), "event-storm")
        elif kind == "session_expired":
            self._expire()
        elif kind in hostile.HOSTILE_FAULTS:
            result = hostile.send(self.channel, kind, fault.size)
            if result.startswith("sent"):
                self.record.server_event(kind)
            return result
        elif kind == "loosen" and fault.loosening is not None:
            loose = self.session.loose.loosening
            loose.drop += fault.loosening.drop
            loose.set.update(fault.loosening.set)
            loose.rename.update(fault.loosening.rename)
        elif kind == "end_next_response":
            self.session.loose.end_next = fault.status
        elif kind == "refuse_next":
            self.session.loose.refuse.update(fault.refuse)
        return "applied"

    def _send_oversized(self, size: int) -> str:
        # An ``error`` event (valid GA shape, harmless to a client) padded to ``size`` bytes.
        event = wire.stamp(
            wire.error_event(
                "", "rtedge_oversized_event", None, None, etype="invalid_request_error"
            )
        )
        overhead = len(encode(event).encode("utf-8"))
        event["error"]["message"] = "x" * max(0, size - overhead)
        text = encode(event)
        channel = self.channel
        if channel is None or channel.readyState != "open":
            return "no open data channel"
        try:
            channel.send(text)
        except ValueError as exc:
            return f"not sent: {exc}"
        self.record.server_event("error")
        return f"sent {len(text)} bytes"

    async def _storm(self, rate: float, seconds: float) -> None:
        # Batches every 10 ms: a sleep per event would cap the rate at the timer resolution.
        total = int(rate * seconds)
        tick = 0.01
        per_tick = max(1, round(rate * tick))
        sent = 0
        loop = asyncio.get_running_loop()
        due = loop.time()
        while sent < total:
            for _ in range(min(per_tick, total - sent)):
                self.session.send(wire.rate_limits())
                sent += 1
            due += tick
            await asyncio.sleep(max(0.0, due - loop.time()))

    # -- teardown ---------------------------------------------------------------------------------
    def close_soon(self, reason: str, flush: bool = False) -> None:
        """Close from a callback (not awaitable there); idempotent."""
        if self._closing is None and not self.ended:
            self._closing = asyncio.get_running_loop().create_task(
                self.close(reason, flush), name=f"{self.id}:close"
            )

    async def close(self, reason: str, flush: bool = False) -> None:
        """Release everything: session, tasks, timers, tracks, transports. Idempotent."""
        if self.ended:
            await self._ended.wait()
            return
        self.ended = True
        try:
            if flush:
                await self._flush()
            record = self.record
            record.active = False
            record.ended_at = time.time()
            record.end_reason = reason
            self._copy_counters()
            for timer in self._timers:
                timer.cancel()
            self._timers.clear()
            self.session.close()
            tasks = [t for t in self.tasks if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await self.pc.close()
        finally:
            self._on_end(self)
            self._ended.set()
            log.info("call %s ended: %s", self.id, reason)

    async def _flush(self) -> None:
        channel = self.channel
        loop = asyncio.get_running_loop()
        deadline = loop.time() + FLUSH_WAIT_S
        while channel is not None and channel.readyState == "open" and loop.time() < deadline:
            if channel.bufferedAmount == 0:
                await asyncio.sleep(0.05)  # let SCTP put the last chunk on the wire
                return
            await asyncio.sleep(0.01)

    def refresh_record(self) -> CallRecord:
        if not self.ended:
            self._copy_counters()
        return self.record

    def _copy_counters(self) -> None:
        record = self.record
        out = self.session.output
        record.rtp_frames_out = out.frames_out
        record.voiced_frames_out = out.voiced_frames_out
        record.input_voiced_s = self.session.input.voiced_samples / INPUT_RATE
        record.late_frames_out = out.late_frames
        record.max_late_ms = out.max_late_ms
        buffer = self._receive_buffer
        if buffer is not None:
            record.receive_buffer.update(
                released=buffer.released,
                skipped=buffer.skipped,
                late=buffer.late,
                merged=buffer.merged,
            )
