"""Echo cancellation: the speaker's exact output kept by playback position (``ReferenceTap``,
written by the playback thread) and WebRTC's AEC3 + NS + AGC2 run on the capture thread
(``EchoCanceller``), with its echo return loss enhancement and the echo path's delay measured."""

from __future__ import annotations

import collections
import math
import threading
import time
from collections.abc import Callable

import numpy as np

from rtedge.media.dsp import Int16Array

#: Far-end blocks quieter than this (RMS, 0..1) carry no echo worth measuring ERLE on.
FAR_ACTIVE_RMS = 0.003
#: Longest echo path the delay estimate looks for.
MAX_DELAY_S = 0.5
#: Echo lags behind its reference that AEC3 cancels (measured here: 30-50 dB up to 400 ms): a
#: reference that comes after its echo cannot be used at all.
GOOD_DELAY_MS = (5.0, 450.0)
#: The reference is moved by the echo's measured lag only while AEC3 removes less than this.
REALIGN_BELOW_DB = 20.0
#: Two delay estimates this close are the same echo.
AGREE_MS = 20.0
#: Where the echo is put behind its reference when it is moved (the acoustic path's own
#: delay changes later only by xruns, which the aligner follows).
TARGET_DELAY_MS = 60.0
#: Far-active 10 ms blocks per ERLE reading (half a second of echo).
ERLE_BLOCKS = 50


class ReferenceTap:
    """What the playback thread wrote to the speaker, after the volume, indexed by playback
    position (frames since the stream began). Positions are the playback clock's: a flush
    rewinds it, and what is written next at those positions replaces what never played.

    ``write`` runs on the playback thread, ``read`` on the capture thread."""

    def __init__(
        self,
        rate: int,
        channels: int,
        seconds: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.rate = rate
        self._clock = clock
        self.channels = channels
        self._size = int(rate * seconds)
        self._ring: Int16Array = np.zeros(self._size, dtype=np.int16)
        self._lock = threading.Lock()
        self.written_to = 0  # position after the last frame written
        self.written_at = clock()  # when it was written
        self.queued = 0  # frames the device held after the last write (its output delay)

    def write(self, position: int, samples: Int16Array, queued: int) -> None:
        ch = self.channels
        mono = samples if ch == 1 else samples[: samples.size // ch * ch : ch]
        n = mono.size
        size = self._size
        with self._lock:
            if position > self.written_to:
                # frames never written (the virtual sink while the speaker was missing): silence
                self._fill(self.written_to, min(position - self.written_to, size), None)
            self._fill(position + max(0, n - size), min(n, size), mono[-size:])
            self.written_to = position + n
            self.written_at = self._clock()
            self.queued = queued

    def _fill(self, position: int, n: int, data: Int16Array | None) -> None:
        start = position % self._size
        first = min(n, self._size - start)
        if data is None:
            self._ring[start : start + first] = 0
            self._ring[: n - first] = 0
        else:
            self._ring[start : start + first] = data[:first]
            self._ring[: n - first] = data[first:n]

    def position(self) -> tuple[int, float]:
        """The position after the last frame written, and when it was written."""
        with self._lock:
            return self.written_to, self.written_at

    def read(self, end: int, n: int) -> Int16Array:
        """The ``n`` frames before position ``end``; silence where nothing was written."""
        out: Int16Array = np.zeros(n, dtype=np.int16)
        with self._lock:
            hi = min(end, self.written_to)
            lo = max(end - n, self.written_to - self._size, 0)
            if hi <= lo:
                return out
            start = lo % self._size
            count = hi - lo
            first = min(count, self._size - start)
            at = lo - (end - n)
            out[at : at + first] = self._ring[start : start + first]
            out[at + first : at + count] = self._ring[: count - first]
        return out


class Aligner:
    """Maps the capture timeline onto playback positions, each side by its own count against
    the wall clock.

    A sound card plays and captures from one crystal: between two xruns, the playback position
    played while a capture frame was taken is that frame's count plus a constant. The constant
    is measured per side: ``lead`` = playback position written minus the wall clock at the
    write (a late playback thread lowers it for a while; an underrun, silence the device played
    that we never wrote, lowers it for good) and ``lag`` = the wall clock at a capture period's
    arrival minus the capture count (a late capture thread raises it for a while; frames lost
    to an overrun raise it for good). Per window the estimate is the highest lead plus the
    lowest lag: each side's jitter falls on the side its envelope ignores. (Taken together as
    one figure, written minus captured, a late playback thread read as an earlier offset.)

    Every move shifts the echo in AEC3's view, which it then has to find again, so the offset
    moves only when it must, after two windows agree. Capture frames lost bring the echo
    closer to its reference (by the frames lost): past ``tolerance`` frames the reference
    would soon come after its echo, where no canceller can use it, so the offset follows.
    Silence the device played that we never wrote (an underrun) puts the echo further after
    its reference, which AEC3's own delay estimator follows: the offset moves only past
    ``slack`` frames. So a late playback thread, however long (in a rig whose sink never
    blocks, the pacer re-anchoring) moves nothing; a capture thread late for two whole
    windows moves it once, back the same way once it is on time again. The wall clock's rate
    cancels out: both sides are measured against it."""

    def __init__(
        self, rate: int, window: int = 50, tolerance: int = 480, slack: int | None = None
    ) -> None:
        self.rate = rate
        self.window = window
        self.tolerance = tolerance
        self.slack = int(0.1 * rate) if slack is None else slack
        self.offset: int | None = None
        self._t0: float | None = None
        self._lead: float | None = None
        self._lag: float | None = None
        self._n = 0
        self._pending: int | None = None  # the last window's estimate, when out of the band
        self.changes = 0
        self.moved_by = 0  # frames, all moves added up (for the figures)

    def update(self, written: int, written_at: float, captured: int, captured_at: float) -> int:
        """``written``: playback position after the last write, at ``written_at``;
        ``captured``: capture frames (at the playback rate) including the period that arrived
        at ``captured_at`` (both ``time.monotonic()``)."""
        if self._t0 is None:
            self._t0 = min(written_at, captured_at)
        lead = written - (written_at - self._t0) * self.rate
        lag = (captured_at - self._t0) * self.rate - captured
        self._lead = lead if self._lead is None else max(self._lead, lead)
        self._lag = lag if self._lag is None else min(self._lag, lag)
        self._n += 1
        if self.offset is None:
            self.offset = round(lead + lag)
        if self._n >= self.window:
            self._window_end(round(self._lead + self._lag))
        return self.offset

    def _window_end(self, best: int) -> None:
        assert self.offset is not None
        self._lead = self._lag = None
        self._n = 0
        if best > self.offset + self.tolerance:
            side = 1
        elif best < self.offset - self.slack:
            side = -1
        else:
            self._pending = None
            return
        prev, self._pending = self._pending, best
        if prev is not None and (prev - self.offset) * side > 0:
            # two windows agree: move to the nearer of the two (the other may be jitter)
            to = min(prev, best) if side > 0 else max(prev, best)
            self.moved_by += to - self.offset
            self.offset = to
            self._pending = None
            self.changes += 1


class EchoCanceller:
    """AEC3 (+ NS, AGC2 when asked) on 10 ms blocks, measuring ERLE and the echo delay.

    Not thread-safe (nor is WebRTC's processor): it lives on the capture thread."""

    def __init__(
        self,
        rate: int,
        *,
        echo_cancel: bool,
        noise_suppression: bool,
        auto_gain: bool,
    ) -> None:
        from pywebrtc_audio import AudioProcessor

        self.rate = rate
        self.block = rate // 100
        self.echo_cancel = echo_cancel
        self._ap = AudioProcessor(
            rate,
            1,
            echo_cancellation=echo_cancel,
            noise_suppression=noise_suppression,
            high_pass_filter=echo_cancel or noise_suppression,
            auto_gain_control=auto_gain,
        )
        # ERLE over far-active blocks, in windows of about a second
        self._near_energy = 0.0
        self._out_energy = 0.0
        self._active_blocks = 0
        self.erle_db: float | None = None
        self.erle_readings = 0
        #: (time.monotonic(), dB) of the recent readings, for the figures (appended here,
        #: read elsewhere: a deque's append and list() are atomic)
        self.erle_log: collections.deque[tuple[float, float]] = collections.deque(maxlen=2000)
        # delay: cross-correlation of the far end with the raw mic every few seconds
        self._hist_far: list[Int16Array] = []
        self._hist_near: list[Int16Array] = []
        self._hist_blocks = int(1.0 * 100)
        self._since_delay = 0
        self.delay_ms: float | None = None
        self._last_delay: float | None = None
        #: The echo's lag behind its reference, when out of the range AEC3 cancels well
        #: (see ``GOOD_DELAY_MS``): the front end moves the reference and clears it.
        self.realign_ms: float | None = None

    def set_output_delay(self, ms: int) -> None:
        """The device's measured output delay: AEC3's delay hint."""
        self._ap.stream_delay_ms = max(0, min(500, ms))

    def process(self, near: Int16Array, far: Int16Array, *, measure: bool = True) -> Int16Array:
        """``near`` and ``far`` of equal length, a whole number of 10 ms blocks. ``measure``:
        the near end is not known to be talking (ERLE is the echo's loss alone)."""
        b = self.block
        out = np.empty_like(near)
        for i in range(0, near.size - b + 1, b):
            n = near[i : i + b]
            f = far[i : i + b]
            o = self._ap.process(n, f) if self.echo_cancel else self._ap.process(n)
            out[i : i + b] = o
            if self.echo_cancel and measure:
                self._measure(n, f, o)
        return out

    def _measure(self, near: Int16Array, far: Int16Array, out: Int16Array) -> None:
        fx = far.astype(np.float32)
        far_e = float(fx.dot(fx)) / fx.size
        if far_e > (FAR_ACTIVE_RMS * 32768) ** 2:
            nx = near.astype(np.float32)
            ox = out.astype(np.float32)
            self._near_energy += float(nx.dot(nx))
            self._out_energy += float(ox.dot(ox))
            self._active_blocks += 1
            if self._active_blocks >= ERLE_BLOCKS:
                self.erle_readings += 1
                if self._near_energy > 0:
                    self.erle_db = round(
                        10 * math.log10(self._near_energy / max(self._out_energy, 1.0)), 1
                    )
                    self.erle_log.append((time.monotonic(), self.erle_db))
                self._near_energy = self._out_energy = 0.0
                self._active_blocks = 0
            self._since_delay += 1
        # the last second, every block (a correlation needs contiguous audio)
        self._hist_far.append(far)
        self._hist_near.append(near)
        if len(self._hist_far) > self._hist_blocks:
            del self._hist_far[0], self._hist_near[0]
        if far_e > (FAR_ACTIVE_RMS * 32768) ** 2:
            full = len(self._hist_far) == self._hist_blocks
            # every 3 s of echo; every second while AEC3 is not cancelling it (at start-up)
            poor = self.erle_db is None or self.erle_db < REALIGN_BELOW_DB
            if full and self._since_delay >= (1 if poor else 3) * self._hist_blocks:
                self._since_delay = 0
                self.delay_ms = estimate_delay_ms(
                    np.concatenate(self._hist_near), np.concatenate(self._hist_far), self.rate
                )
                lo, hi = GOOD_DELAY_MS
                last, now = self._last_delay, self.delay_ms
                self._last_delay = now
                # Only what is broken is fixed, and on two estimates in a row that agree:
                # speech correlates with itself at other lags too (a reply that repeats the
                # question), and a wrong move costs AEC3 its lock.
                if (
                    (self.erle_db is None or self.erle_db < REALIGN_BELOW_DB)
                    and now is not None
                    and not lo <= now <= hi
                    and last is not None
                    and abs(last - now) <= AGREE_MS
                ):
                    self.realign_ms = now

    def forget_delay(self) -> None:
        """The reference moved: what the history says about the delay is stale."""
        self._hist_far.clear()
        self._hist_near.clear()
        self._since_delay = 0
        self._last_delay = None
        self.realign_ms = None


def estimate_delay_ms(near: Int16Array, far: Int16Array, rate: int) -> float | None:
    """Lag of ``far`` in ``near`` (-MAX_DELAY_S..MAX_DELAY_S: negative when the echo comes
    before its reference) by FFT cross-correlation, at a third of the rate (speech's echo is
    mostly below 8 kHz); None when nothing correlates."""
    step = 3 if rate >= 32000 else 1
    n = near[::step].astype(np.float64)
    f = far[::step].astype(np.float64)
    size = 1 << int(math.ceil(math.log2(n.size + f.size)))
    corr = np.fft.irfft(np.fft.rfft(n, size) * np.conj(np.fft.rfft(f, size)), size)
    max_lag = int(MAX_DELAY_S * rate / step)
    window = np.concatenate((corr[size - max_lag :], corr[: max_lag + 1]))
    i = int(np.argmax(window))
    norm = math.sqrt(float(np.square(n).sum()) * float(np.square(f).sum()))
    if norm <= 0 or window[i] / norm < 0.1:
        return None
    return round((i - max_lag) * step * 1000 / rate, 1)


__all__ = [
    "GOOD_DELAY_MS",
    "TARGET_DELAY_MS",
    "Aligner",
    "EchoCanceller",
    "ReferenceTap",
    "estimate_delay_ms",
]
