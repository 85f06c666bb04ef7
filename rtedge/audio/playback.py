"""The speaker thread: the playout buffer to the device a period at a time (a thin loop).

While the device is missing, a virtual sink takes its place at wall-clock pace.
"""

from __future__ import annotations

import contextlib
import errno
import threading
import time

from rtedge.audio.alsa import DeviceError, OpenPcm, Pcm, PcmParams, poller
from rtedge.audio.echo import ReferenceTap
from rtedge.audio.playclock import PlaybackClock, Span
from rtedge.audio.playout import SKIP_SILENCE_AFTER_S, PlayoutBuffer
from rtedge.audio.worker import DeviceWorker, Pacer, StatusCallback
from rtedge.media.dsp import Int16Array

#: The virtual sink (speaker missing) keeps its schedule across open attempts unless it fell
#: behind by more than this: then the thread itself was held up, and it starts afresh.
VIRTUAL_RESYNC_S = 1.0


class PlaybackWorker(DeviceWorker):
    """Writes the playout buffer to the speaker, one period at a time, keeping the device
    between one and two periods full. Silence is written when the buffer is empty, so the device
    keeps running and the playback clock keeps counting.

    ``push`` / ``flush`` / ``add_earcon`` are called from the event loop; everything else runs
    on the playback thread. While the device is missing, a virtual sink consumes the buffer at
    wall-clock pace, so the remote track is drained and the clock goes on.
    """

    kind = "playback"

    def __init__(
        self,
        params: PcmParams,
        *,
        latency_frames: int,
        volume: float,
        on_status: StatusCallback,
        reopen_initial_s: float,
        reopen_max_s: float,
        open_pcm: OpenPcm | None = None,
    ) -> None:
        super().__init__(
            params,
            on_status=on_status,
            reopen_initial_s=reopen_initial_s,
            reopen_max_s=reopen_max_s,
            open_pcm=open_pcm,
        )
        self.buffer = PlayoutBuffer(
            rate=params.rate,
            channels=params.channels,
            period_frames=params.period_frames,
            latency_frames=latency_frames,
            volume=volume,
        )
        self.clock = PlaybackClock(params.rate, params.period_frames)
        self._flush = threading.Event()
        self.device_origin = 0  # clock position of the current device's first frame
        # (time.monotonic(), clock) where the virtual sink began: it plays at wall-clock pace
        self._virtual_from: tuple[float, int] | None = None
        #: Gets every period as written to the device (the echo canceller's reference).
        self.tap: ReferenceTap | None = None

    # ---- loop side -------------------------------------------------------------------------

    def push(self, samples: Int16Array) -> int:
        """Queue interleaved device-format samples (``PlayoutBuffer.push``); returns frames of
        sound dropped to stay bounded."""
        trace = self.trace
        if trace is not None:
            trace("sink.pushed", samples, self.params.channels, time.monotonic())
        return self.buffer.push(samples)

    def flush(self) -> None:
        """Empty our buffer now and ask the thread to drop the device's at its next period."""
        self.buffer.flush()
        self._flush.set()

    def add_earcon(self, samples: Int16Array) -> None:
        self.buffer.add_earcon(samples)

    def buffered_frames(self) -> int:
        return self.buffer.buffered_frames()

    def played_frames(self) -> int:
        return self.clock.played_frames()

    def span_at(self, position: int) -> Span | None:
        return self.clock.span_at(position)

    # the buffer's figures, as the pipeline, status and tests read them
    @property
    def capacity_frames(self) -> int:
        return self.buffer.capacity_frames

    @capacity_frames.setter
    def capacity_frames(self, frames: int) -> None:
        self.buffer.capacity_frames = frames

    @property
    def frames_dropped(self) -> int:
        return self.buffer.frames_dropped

    @property
    def frames_shed(self) -> int:
        return self.buffer.frames_shed

    @property
    def frames_skipped(self) -> int:
        return self.buffer.frames_skipped

    @property
    def silence_periods(self) -> int:
        return self.buffer.silence_periods

    # ---- thread side -----------------------------------------------------------------------

    def _take(self, frames: int) -> tuple[Int16Array, float]:
        """The next period from the buffer (``PlayoutBuffer.take``), traced."""
        out = self.buffer.take(frames)
        trace = self.trace
        if trace is not None:
            trace("playback.take", out[0], self.params.channels, time.monotonic())
        return out

    def _idle(self, seconds: float) -> None:
        """Device missing: be a virtual sink at wall-clock pace until the next open attempt.
        It keeps the clock where the wall clock says from when it began, across attempts, so
        the time an attempt takes is played too (else the clock would fall behind by that much
        at every attempt)."""
        frames = self.params.period_frames
        rate = self.params.rate
        clock = self.clock
        now = time.monotonic()
        deadline = now + seconds
        if self._virtual_from is None:
            self._virtual_from = (now, clock.written)
        while not self._stop.is_set() and time.monotonic() < deadline:
            self.last_beat = time.monotonic()
            if self._flush.is_set():
                self._flush.clear()
                clock.end_run()
            t0, w0 = self._virtual_from
            due = t0 + (clock.written - w0 + frames) / rate  # once the period has had time to play
            if time.monotonic() - due > VIRTUAL_RESYNC_S:
                self._virtual_from = (time.monotonic(), clock.written)
                continue
            self._stop.wait(max(0.0, due - time.monotonic()))
            if time.monotonic() < due:
                break  # stopping
            _, level = self._take(frames)
            clock.account(frames, level, 0)

    def _close(self, pcm: Pcm) -> None:
        with contextlib.suppress(Exception):
            pcm.drop()
        super()._close(pcm)

    def _stream(self, pcm: Pcm) -> None:
        p = self.params
        buffer_frames = int(pcm.info().get("buffer_size") or p.period_frames * p.periods)
        self.device_origin = self.clock.written
        try:
            self._play_loop(pcm, buffer_frames)
        except Exception:
            if not self.ok:
                # it failed before it ever played: those frames were never heard
                self.clock.drop_queued(self.clock.written - self.device_origin)
            raise

    def _play_loop(self, pcm: Pcm, buffer_frames: int) -> None:
        p = self.params
        ch = p.channels
        period = p.period_frames
        clock = self.clock
        poll = poller(pcm)
        pacer = Pacer(p.rate, buffer_frames / p.rate + self.period_s, self._stop)
        timeout_ms = max(1, int(self.period_s * 1000))
        pending: Int16Array | None = None
        pending_level = 0.0
        first = True
        stalled_since: float | None = None
        while not self._stop.is_set():
            self.last_beat = time.monotonic()
            if self._flush.is_set():
                self._flush.clear()
                pending = None
                avail = pcm.avail()
                queued = buffer_frames - avail if 0 <= avail <= buffer_frames else 0
                pcm.drop()
                clock.drop_queued(queued)
                if queued:  # a sink that held nothing (null, file) keeps its clock: a reset
                    pacer.reset()  # let one more buffer through per flush, latency for good
            avail = pcm.avail()
            # avail < 0: xrun or not prepared, and the next write recovers
            queued = 0 if avail < 0 else max(0, buffer_frames - avail)
            if queued > period and pending is None:
                # the device still holds more than a period: sleep in poll until it wants more
                if not poll.poll(timeout_ms):
                    if stalled_since is None:
                        stalled_since = time.monotonic()
                    elif time.monotonic() - stalled_since > 2.0:
                        raise DeviceError("device stopped consuming audio")
                continue
            stalled_since = None
            if pending is None:
                pending, pending_level = self._take(period)
            began = time.monotonic()
            n = pcm.write(pending)  # any buffer: no copy to bytes
            held_s = time.monotonic() - began  # a device keeping its own time holds us up here
            if n == -errno.EPIPE:
                # underrun: pyalsaaudio re-prepared the device; write the same period again
                # (no catch-up burst: what was missed is simply late by one period)
                self.xruns += 1
                pacer.reset()
                continue
            if n < 0:
                raise DeviceError(f"write returned {n}")
            if n == 0:
                poll.poll(timeout_ms)
                continue
            if self.trace is not None:
                self.trace("device.write", pending[: n * ch], ch, time.monotonic())
            if first and clock.written + n - self.device_origin > buffer_frames + period:
                # more than the device holds went through: it really plays (the file plugin
                # accepts a buffer before its first write to the file can fail)
                self._streaming()
                self._virtual_from = None
                first = False
            avail = pcm.avail()
            queued = max(0, buffer_frames - avail) if avail >= 0 else 0
            clock.account(n, pending_level, queued)
            if self.tap is not None:
                self.tap.write(clock.written - n, pending[: n * ch], queued)
            pending = pending[n * ch :] if n * ch < pending.size else None
            pacer.after(n, held_s=held_s)


__all__ = ["SKIP_SILENCE_AFTER_S", "VIRTUAL_RESYNC_S", "PlaybackWorker"]
