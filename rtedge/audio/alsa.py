"""ALSA capture and playback threads over pyalsaaudio, with reopen-on-failure.

One thread per device. Devices are opened in non-blocking mode (a busy or vanished card must
never block the interpreter: pyalsaaudio holds the GIL while ``snd_pcm_open`` runs) and the
thread sleeps in ``poll()`` on the device's descriptors, so it never busy-polls. A device that
does not pace itself (the ``null`` plugin, a regular file) is held to the wall clock by
``Pacer``. Errors close the device and reopen it with exponential backoff; status changes go
to ``on_status`` (called on the worker thread: the owner crosses into asyncio itself).
"""

from __future__ import annotations

import collections
import contextlib
import errno
import logging
import re
import select
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from rtedge.audio.echo import ReferenceTap
from rtedge.backoff import Backoff
from rtedge.logs import event as log_event
from rtedge.media.dsp import SILENCE_RMS, Converter, Int16Array, Rechunker, apply_gain, rms
from rtedge.systemd import try_realtime

log = logging.getLogger(__name__)

StatusCallback = Callable[[bool, str], None]

#: The virtual sink (speaker missing) keeps its schedule across open attempts unless it fell
#: behind by more than this: then the thread itself was held up, and it starts afresh.
VIRTUAL_RESYNC_S = 1.0


class Pcm(Protocol):
    """The part of ``alsaaudio.PCM`` the workers use."""

    def read(self) -> tuple[int, bytes]: ...
    def write(self, data: bytes | Int16Array) -> int: ...
    def avail(self) -> int: ...
    def drop(self) -> int: ...
    def close(self) -> None: ...
    def polldescriptors(self) -> list[tuple[int, int]]: ...
    def info(self) -> dict[str, Any]: ...


class DeviceError(Exception):
    """The device failed while streaming; it will be closed and reopened."""


@dataclass(frozen=True)
class PcmParams:
    device: str
    rate: int
    channels: int
    period_frames: int
    periods: int


OpenPcm = Callable[[str, PcmParams], Pcm]
"""Seam for tests and tools: ``(kind, params) -> Pcm`` with kind ``capture`` or ``playback``."""


def open_alsa_pcm(kind: str, params: PcmParams) -> Pcm:
    """Open an ALSA PCM in non-blocking mode with the given parameters (raises on failure)."""
    import alsaaudio

    pcm_type = alsaaudio.PCM_CAPTURE if kind == "capture" else alsaaudio.PCM_PLAYBACK
    pcm: Pcm = alsaaudio.PCM(
        type=pcm_type,
        mode=alsaaudio.PCM_NONBLOCK,
        device=params.device,
        rate=params.rate,
        channels=params.channels,
        format=alsaaudio.PCM_FORMAT_S16_LE,
        periodsize=params.period_frames,
        periods=params.periods,
    )
    info = pcm.info()
    if info.get("rate") != params.rate or info.get("channels") != params.channels:
        # The device refused our shape (a hw: device without the plug layer): say so plainly.
        got = f"{info.get('rate')} Hz, {info.get('channels')} ch"
        pcm.close()
        raise DeviceError(
            f"{params.device} cannot do {params.rate} Hz, {params.channels} ch (offers {got}); "
            "use a plughw:/default device or change [audio] sample_rate/channels"
        )
    return pcm


def describe_error(exc: BaseException) -> str:
    text = (str(exc) or type(exc).__name__).splitlines()[0][:200]
    if re.fullmatch(r"No such file or directory \[.*\]", text):
        # pyalsaaudio's words for a PCM name or card this machine does not have
        return "no such device here (No such file or directory; rtedge devices lists the PCMs)"
    return text


class Pacer:
    """Keeps a worker from running ahead of the wall clock by more than ``ahead_s``.

    Real devices block or poll at their own clock; then the pacer only re-anchors and never
    sleeps. Devices that never block (``null``, files) are slowed to real time. Falling behind
    (a stall, an xrun) re-anchors instead of allowing a burst to catch up.
    """

    def __init__(self, rate: int, ahead_s: float, stop: threading.Event) -> None:
        self.rate = rate
        self.ahead_s = ahead_s
        self._stop = stop
        self._t0: float | None = None
        self._frames = 0

    def after(self, frames: int) -> None:
        now = time.monotonic()
        if self._t0 is None:
            self._t0 = now
            self._frames = 0
        self._frames += frames
        lead = self._frames / self.rate - (now - self._t0)
        if lead < -self.ahead_s:
            self._t0 = now - self._frames / self.rate
        elif lead > self.ahead_s:
            self._stop.wait(lead - self.ahead_s)

    def reset(self) -> None:
        self._t0 = None


class _Worker:
    kind = "device"

    def __init__(
        self,
        params: PcmParams,
        *,
        on_status: StatusCallback,
        reopen_initial_s: float,
        reopen_max_s: float,
        open_pcm: OpenPcm | None = None,
    ) -> None:
        self.params = params
        self._on_status = on_status
        self._open_pcm = open_pcm or open_alsa_pcm
        self._backoff = Backoff(reopen_initial_s, reopen_max_s)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.ok = False
        self._reported_missing = False
        self.last_beat = time.monotonic()  # progress mark for the systemd watchdog
        self.opens = 0
        self.failures = 0
        self.xruns = 0

    @property
    def period_s(self) -> float:
        return self.params.period_frames / self.params.rate

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=f"rtedge-{self.kind}", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 1.0) -> bool:
        """Ask the thread to finish; True when it did within ``timeout``."""
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is None:
            return True
        thread.join(timeout)
        if thread.is_alive():
            log.warning(
                "%s thread did not finish within %.1fs (blocked in the driver)", self.kind, timeout
            )
            return False
        return True

    def _status(self, ok: bool, detail: str) -> None:
        self.ok = ok
        try:
            self._on_status(ok, detail)
        except Exception:  # a status listener must never kill the audio thread
            log.exception("%s status callback failed", self.kind)

    def _run(self) -> None:
        if try_realtime():
            log.info("%s thread runs SCHED_FIFO (the service's LimitRTPRIO)", self.kind)
        while not self._stop.is_set():
            try:
                pcm = self._open_pcm(self.kind, self.params)
            except Exception as exc:  # ALSAAudioError, OSError, DeviceError
                self._failed(exc, "%s device unavailable: %s")
                self._idle(self._backoff.next_delay())
                continue
            self.opens += 1
            try:
                self._stream(pcm)
            except Exception as exc:
                self._failed(exc, "%s device failed: %s; reopening")
            finally:
                self._close(pcm)
            if not self._stop.is_set():
                self._idle(self._backoff.next_delay())

    def _failed(self, exc: BaseException, message: str) -> None:
        """Count a failure, log it once per outage (retries come every few seconds), report it."""
        self.failures += 1
        reason = f"{self.params.device}: {describe_error(exc)}"
        if not self._reported_missing:
            log_event(
                log,
                logging.WARNING,
                "device_error",
                message,
                self.kind,
                reason,
                device=self.params.device,
                direction=self.kind,
            )
            self._reported_missing = True
        self._status(False, reason)

    def _streaming(self) -> None:
        """The first period moved: the device works (some plugins only fail on first I/O)."""
        self._backoff.reset()
        self._reported_missing = False
        log.info("%s device streaming: %s", self.kind, self._describe())
        self._status(True, self._describe())

    def _describe(self) -> str:
        p = self.params
        return f"{p.device} {p.rate} Hz {p.channels} ch"

    def beat(self) -> float:
        """``time.monotonic()`` of the thread's last sign of life (a period moved, a retry)."""
        return self.last_beat

    def _idle(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while not self._stop.is_set():
            self.last_beat = now = time.monotonic()
            if now >= deadline:
                return
            self._stop.wait(min(0.5, deadline - now))

    def _close(self, pcm: Pcm) -> None:
        with contextlib.suppress(Exception):
            pcm.close()

    def _stream(self, pcm: Pcm) -> None:
        raise NotImplementedError


def _poller(pcm: Pcm) -> select.poll:
    poller = select.poll()
    for fd, events in pcm.polldescriptors():
        poller.register(fd, events)
    return poller


class CaptureWorker(_Worker):
    """Reads the microphone, converts it once to ``out_rate``/mono and hands out fixed periods.

    ``on_period(samples, level)`` gets interleaved s16 mono chunks of ``out_frames`` frames, on
    the capture thread.
    """

    kind = "capture"

    def __init__(
        self,
        params: PcmParams,
        *,
        on_period: Callable[[Int16Array, float], None],
        on_status: StatusCallback,
        out_rate: int,
        out_frames: int,
        reopen_initial_s: float,
        reopen_max_s: float,
        stall_s: float = 2.0,
        max_burst_s: float = 1.0,
        open_pcm: OpenPcm | None = None,
    ) -> None:
        super().__init__(
            params,
            on_status=on_status,
            reopen_initial_s=reopen_initial_s,
            reopen_max_s=reopen_max_s,
            open_pcm=open_pcm,
        )
        self._on_period = on_period
        self.out_rate = out_rate
        self.out_frames = out_frames
        self.stall_s = stall_s
        self.max_burst_s = max_burst_s
        self.periods_read = 0
        self.frames_read = 0

    def _stream(self, pcm: Pcm) -> None:
        p = self.params
        poller = _poller(pcm)
        converter = Converter(p.rate, p.channels, self.out_rate, 1)
        rechunker = Rechunker(self.out_frames, 1)
        # A backlog (the ring, or a FIFO that filled while we were not reading) is read at
        # once, so latency drops back; only a source that runs away for longer than
        # max_burst_s (EOF on a FIFO, a regular file) is held to real time.
        pacer = Pacer(p.rate, max(self.max_burst_s, p.periods * self.period_s), self._stop)
        timeout_ms = max(1, int(self.period_s * 2000))
        last_data = time.monotonic()
        empty_reads = 0
        first = True
        while not self._stop.is_set():
            self.last_beat = time.monotonic()
            if not poller.poll(timeout_ms):
                if time.monotonic() - last_data > self.stall_s:
                    raise DeviceError(f"no audio for {self.stall_s:.1f}s")
                continue
            n, data = pcm.read()
            if n == -errno.EPIPE:
                self.xruns += 1  # overrun: pyalsaaudio already re-prepared the stream
                continue
            if n <= 0:
                empty_reads += 1
                if empty_reads > 2:  # ready but nothing to read: do not spin
                    self._stop.wait(self.period_s / 4)
                if time.monotonic() - last_data > self.stall_s:
                    raise DeviceError(f"no audio for {self.stall_s:.1f}s")
                continue
            empty_reads = 0
            last_data = time.monotonic()
            if first:
                self._streaming()
                first = False
            self.frames_read += n
            samples = np.frombuffer(data, dtype=np.int16)
            for chunk in rechunker.push(converter.convert(samples)):
                self.periods_read += 1
                self._on_period(chunk, rms(chunk))
            pacer.after(n)


SKIP_SILENCE_AFTER_S = 0.2
"""Silence that long is a pause between utterances (pauses inside speech are shorter)."""
BURST_S = 0.08
"""Audio held beyond the target depth before the oldest is dropped: a burst that comes late
after a network stall is played rather than cut (the depth comes back down in the next pause)."""


@dataclass
class _Span:
    start: int
    end: int
    level: float
    run_start: int | None  # where the current non-silent run began, None when silent


class PlaybackWorker(_Worker):
    """Writes our small bounded buffer to the speaker, one period at a time, keeping the device
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
        self.volume = volume
        self.target_frames = max(latency_frames, params.period_frames)
        self.capacity_frames = (
            self.target_frames + int(BURST_S * params.rate) + params.period_frames
        )
        self._priming = True  # the buffer ran dry: wait for target_frames before playing
        self._zeros: Int16Array = np.zeros(0, dtype=np.int16)
        self._lock = threading.Lock()
        # queued audio, each chunk with its level (RMS after the volume): computed once here,
        # on the loop, rather than every period on the playback thread
        self._chunks: collections.deque[tuple[Int16Array, float]] = collections.deque()
        self._buffered = 0  # frames in _chunks
        self._earcons: collections.deque[Int16Array] = collections.deque()
        self._flush = threading.Event()
        # playback clock, written by the thread, read anywhere
        self._written = 0
        self._clock: tuple[int, int, float] = (0, 0, time.monotonic())  # written, queued, when
        self._last_played = 0
        self._spans: collections.deque[_Span] = collections.deque(maxlen=256)
        self._run_start: int | None = None
        self.frames_dropped = 0  # sound dropped from a full buffer (heard as a skip)
        self.frames_shed = 0  # silence dropped from a full buffer (not heard)
        self.frames_skipped = 0  # silence not queued in a long pause (see push)
        self._silent_run = 0  # frames of silence pushed since the last sound
        self._skip_after_frames = int(SKIP_SILENCE_AFTER_S * params.rate)
        self.silence_periods = 0
        self.device_origin = 0  # clock position of the current device's first frame
        # (time.monotonic(), clock) where the virtual sink began: it plays at wall-clock pace
        self._virtual_from: tuple[float, int] | None = None
        #: Gets every period as written to the device (the echo canceller's reference).
        self.tap: ReferenceTap | None = None

    # ---- loop side -------------------------------------------------------------------------

    def push(self, samples: Int16Array) -> int:
        """Queue interleaved device-format samples; returns frames of sound dropped to stay
        bounded.

        Once the stream has been silent for ``SKIP_SILENCE_AFTER_S`` (longer than the pauses
        inside speech), further silence is not queued while the buffer holds its target depth:
        between replies the buffer comes back to the target, so the next one plays with the
        configured delay however deep a stall had made the buffer before. Speech keeps its
        timing; shortening a long pause is inaudible.

        Over capacity (a burst after the stream was held up) silent chunks go first: they cost
        only latency, so they are counted in ``frames_shed``, not as drops. Then the oldest
        sound goes."""
        ch = self.params.channels
        if samples.size == 0:
            return 0
        dropped = 0
        frames = samples.size // ch
        level = rms(samples)
        if level < SILENCE_RMS:
            self._silent_run += frames
            # skipped when queuing it would leave the buffer more than half a chunk past its
            # target: the depth then averages the target instead of the target plus half a chunk
            if (
                self._silent_run > self._skip_after_frames
                and self._buffered + frames // 2 > self.target_frames
            ):
                self.frames_skipped += frames
                return 0
        else:
            self._silent_run = 0
        with self._lock:
            self._chunks.append((samples, min(1.0, level * self.volume)))
            self._buffered += frames
            if self._buffered > self.capacity_frames:
                self._shed_silence()
            while self._buffered > self.capacity_frames and self._chunks:
                excess = self._buffered - self.capacity_frames
                head, head_level = self._chunks[0]
                head_frames = head.size // ch
                if head_frames <= excess:
                    self._chunks.popleft()
                    self._buffered -= head_frames
                    dropped += head_frames
                else:
                    self._chunks[0] = (head[excess * ch :], head_level)
                    self._buffered -= excess
                    dropped += excess
        self.frames_dropped += dropped
        return dropped

    def _shed_silence(self) -> None:
        """Drop silent chunks, oldest first, until within capacity (lock held)."""
        ch = self.params.channels
        kept: collections.deque[tuple[Int16Array, float]] = collections.deque()
        for chunk, level in self._chunks:
            if self._buffered > self.capacity_frames and level < SILENCE_RMS:
                self._buffered -= chunk.size // ch
                self.frames_shed += chunk.size // ch
            else:
                kept.append((chunk, level))
        self._chunks = kept

    def buffered_frames(self) -> int:
        return self._buffered

    def flush(self) -> None:
        """Empty our buffer now and ask the thread to drop the device's at its next period."""
        with self._lock:
            self._chunks.clear()
            self._buffered = 0
            self._priming = True
        self._flush.set()

    def add_earcon(self, samples: Int16Array) -> None:
        with self._lock:
            self._earcons.append(samples)

    def played_frames(self) -> int:
        written, queued, when = self._clock
        elapsed = max(0.0, time.monotonic() - when)
        played = min(written, written - queued + int(elapsed * self.params.rate))
        played = max(played, self._last_played)
        self._last_played = played
        return played

    def span_at(self, position: int) -> _Span | None:
        for span in reversed(self._spans):
            if span.start <= position < span.end:
                return span
            if span.end <= position:
                return span if position - span.end < self.params.period_frames else None
        return None

    # ---- thread side -----------------------------------------------------------------------

    def _take(self, frames: int) -> tuple[Int16Array, float]:
        """Up to one period of speech (padded with silence), earcons mixed, volume applied.
        Returns the samples and the level of the speech alone (earcons excluded).

        Once the buffer has run dry (at the start, after a flush, when the stream stalled), it
        plays nothing until it holds its target depth again: a reply starts with that much in
        hand against the next stall, rather than stuttering from an empty buffer."""
        ch = self.params.channels
        want = frames * ch
        parts: list[Int16Array] = []
        got = 0
        level = 0.0
        with self._lock:
            if self._priming and self._buffered >= self.target_frames:
                self._priming = False
            while not self._priming and got < want and self._chunks:
                head, head_level = self._chunks[0]
                need = want - got
                level = max(level, head_level)
                if head.size <= need:
                    self._chunks.popleft()
                    parts.append(head)
                    got += head.size
                else:
                    parts.append(head[:need])
                    self._chunks[0] = (head[need:], head_level)
                    got += need
            if not self._priming and got < want:
                self._priming = True  # ran dry
            self._buffered -= got // ch
            earcon_parts: list[Int16Array] = []
            egot = 0
            while egot < want and self._earcons:
                head = self._earcons[0]
                need = want - egot
                if head.size <= need:
                    earcon_parts.append(self._earcons.popleft())
                    egot += head.size
                else:
                    earcon_parts.append(head[:need])
                    self._earcons[0] = head[need:]
                    egot += need
        # As few numpy calls as possible: this runs every period with cold caches.
        if got == 0:
            self.silence_periods += 1
            speech = self._silence(want)
        elif got == want and len(parts) == 1:
            speech = parts[0]  # a view of the queued chunk: no copy
        else:
            speech = np.zeros(want, dtype=np.int16)
            speech[:got] = parts[0] if len(parts) == 1 else np.concatenate(parts)
        speech = apply_gain(speech, self.volume)
        if earcon_parts:
            e = earcon_parts[0] if len(earcon_parts) == 1 else np.concatenate(earcon_parts)
            mixed = speech.astype(np.int32)
            mixed[: e.size] += apply_gain(e, self.volume)
            speech = np.clip(mixed, -32768, 32767).astype(np.int16)
        return speech, level

    def _silence(self, size: int) -> Int16Array:
        """A shared block of zeros (never written to)."""
        if self._zeros.size != size:
            self._zeros = np.zeros(size, dtype=np.int16)
        return self._zeros

    def _account(self, frames: int, level: float, queued: int) -> None:
        start = self._written
        self._written += frames
        if level >= SILENCE_RMS:
            if self._run_start is None:
                self._run_start = start
        else:
            self._run_start = None
        self._spans.append(_Span(start, self._written, level, self._run_start))
        self._clock = (self._written, queued, time.monotonic())

    def _drop_queued(self, queued: int) -> None:
        """The device's ``queued`` frames were discarded: rewind the clock to what played."""
        played = max(self._written - queued, self._last_played)
        self._written = played
        while self._spans and self._spans[-1].start >= played:
            self._spans.pop()
        if self._spans and self._spans[-1].end > played:
            self._spans[-1].end = played
        self._run_start = None
        self._clock = (played, 0, time.monotonic())

    def _idle(self, seconds: float) -> None:
        """Device missing: be a virtual sink at wall-clock pace until the next open attempt.
        It keeps the clock where the wall clock says from when it began, across attempts, so
        the time an attempt takes is played too (else the clock would fall behind by that much
        at every attempt)."""
        frames = self.params.period_frames
        rate = self.params.rate
        now = time.monotonic()
        deadline = now + seconds
        if self._virtual_from is None:
            self._virtual_from = (now, self._written)
        while not self._stop.is_set() and time.monotonic() < deadline:
            self.last_beat = time.monotonic()
            if self._flush.is_set():
                self._flush.clear()
                self._run_start = None
            t0, w0 = self._virtual_from
            due = t0 + (self._written - w0 + frames) / rate  # once the period has had time to play
            if time.monotonic() - due > VIRTUAL_RESYNC_S:
                self._virtual_from = (time.monotonic(), self._written)
                continue
            self._stop.wait(max(0.0, due - time.monotonic()))
            if time.monotonic() < due:
                break  # stopping
            _, level = self._take(frames)
            self._account(frames, level, 0)

    def _close(self, pcm: Pcm) -> None:
        with contextlib.suppress(Exception):
            pcm.drop()
        super()._close(pcm)

    def _stream(self, pcm: Pcm) -> None:
        p = self.params
        buffer_frames = int(pcm.info().get("buffer_size") or p.period_frames * p.periods)
        self.device_origin = self._written
        try:
            self._play_loop(pcm, buffer_frames)
        except Exception:
            if not self.ok:
                # it failed before it ever played: those frames were never heard
                self._drop_queued(self._written - self.device_origin)
            raise

    def _play_loop(self, pcm: Pcm, buffer_frames: int) -> None:
        p = self.params
        ch = p.channels
        period = p.period_frames
        poller = _poller(pcm)
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
                self._drop_queued(queued)
                pacer.reset()
            avail = pcm.avail()
            # avail < 0: xrun or not prepared, and the next write recovers
            queued = 0 if avail < 0 else max(0, buffer_frames - avail)
            if queued > period and pending is None:
                # the device still holds more than a period: sleep in poll until it wants more
                if not poller.poll(timeout_ms):
                    if stalled_since is None:
                        stalled_since = time.monotonic()
                    elif time.monotonic() - stalled_since > 2.0:
                        raise DeviceError("device stopped consuming audio")
                continue
            stalled_since = None
            if pending is None:
                pending, pending_level = self._take(period)
            n = pcm.write(pending)  # any buffer: no copy to bytes
            if n == -errno.EPIPE:
                # underrun: pyalsaaudio re-prepared the device; write the same period again
                # (no catch-up burst: what was missed is simply late by one period)
                self.xruns += 1
                pacer.reset()
                continue
            if n < 0:
                raise DeviceError(f"write returned {n}")
            if n == 0:
                poller.poll(timeout_ms)
                continue
            if first and self._written + n - self.device_origin > buffer_frames + period:
                # more than the device holds went through: it really plays (the file plugin
                # accepts a buffer before its first write to the file can fail)
                self._streaming()
                self._virtual_from = None
                first = False
            avail = pcm.avail()
            queued = max(0, buffer_frames - avail) if avail >= 0 else 0
            self._account(n, pending_level, queued)
            if self.tap is not None:
                self.tap.write(self._written - n, pending[: n * ch], queued)
            pending = pending[n * ch :] if n * ch < pending.size else None
            pacer.after(n)


__all__ = [
    "Backoff",
    "CaptureWorker",
    "DeviceError",
    "OpenPcm",
    "Pacer",
    "Pcm",
    "PcmParams",
    "PlaybackWorker",
    "describe_error",
    "open_alsa_pcm",
]
