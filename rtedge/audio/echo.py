"""Echo cancellation: the speaker's exact output kept by playback position (``ReferenceTap``,
written by the playback thread) and WebRTC's AEC3 + NS + AGC2 run on the capture thread
(``EchoCanceller``), with its echo return loss enhancement and the echo path's delay measured."""

from __future__ import annotations

import math
import threading

import numpy as np

from rtedge.media.dsp import Int16Array

#: Far-end blocks quieter than this (RMS, 0..1) carry no echo worth measuring ERLE on.
FAR_ACTIVE_RMS = 0.003
#: Longest echo path the delay estimate looks for.
MAX_DELAY_S = 0.3
#: Far-active 10 ms blocks per ERLE reading (half a second of echo).
ERLE_BLOCKS = 50


class ReferenceTap:
    """What the playback thread wrote to the speaker, after the volume, indexed by playback
    position (frames since the stream began). Positions are the playback clock's: a flush
    rewinds it, and what is written next at those positions replaces what never played.

    ``write`` runs on the playback thread, ``read`` on the capture thread."""

    def __init__(self, rate: int, channels: int, seconds: float = 2.0) -> None:
        self.rate = rate
        self.channels = channels
        self._size = int(rate * seconds)
        self._ring: Int16Array = np.zeros(self._size, dtype=np.int16)
        self._lock = threading.Lock()
        self.written_to = 0  # position after the last frame written
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
    """Maps the capture timeline onto playback positions.

    The offset between the two is the least seen over a window: a capture period that reached
    us late (a busy thread, a burst from the driver) saw the playback further on, so only the
    earliest arrival tells the true offset. At the end of each window of ``window`` periods the
    offset moves to that window's least, but only when it differs by more than ``tolerance``
    frames: every move shifts the echo in AEC3's view, so jitter must not move it, while a
    start-up (the speaker not yet playing), a stall or lost periods move it once, for good."""

    def __init__(self, window: int = 100, tolerance: int = 480) -> None:
        self.window = window
        self.tolerance = tolerance
        self.offset: int | None = None
        self._best: int | None = None
        self._n = 0
        self.changes = 0

    def update(self, offset_now: int) -> int:
        self._best = offset_now if self._best is None else min(self._best, offset_now)
        self._n += 1
        if self.offset is None:
            self.offset = offset_now
        if self._n >= self.window:
            best, self._best, self._n = self._best, None, 0
            if abs(best - self.offset) > self.tolerance:
                self.offset = best
                self.changes += 1
        return self.offset


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
        # delay: cross-correlation of the far end with the raw mic every few seconds
        self._hist_far: list[Int16Array] = []
        self._hist_near: list[Int16Array] = []
        self._hist_blocks = int(1.0 * 100)
        self._since_delay = 0
        self.delay_ms: float | None = None

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
                if self._near_energy > 0:
                    self.erle_db = round(
                        10 * math.log10(self._near_energy / max(self._out_energy, 1.0)), 1
                    )
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
            if full and self._since_delay >= 3 * self._hist_blocks:
                self._since_delay = 0
                self.delay_ms = estimate_delay_ms(
                    np.concatenate(self._hist_near), np.concatenate(self._hist_far), self.rate
                )


def estimate_delay_ms(near: Int16Array, far: Int16Array, rate: int) -> float | None:
    """Lag of ``far`` in ``near`` (0..MAX_DELAY_S) by FFT cross-correlation, at a third of the
    rate (speech's echo is mostly below 8 kHz); None when nothing correlates."""
    step = 3 if rate >= 32000 else 1
    n = near[::step].astype(np.float64)
    f = far[::step].astype(np.float64)
    size = 1 << int(math.ceil(math.log2(n.size + f.size)))
    corr = np.fft.irfft(np.fft.rfft(n, size) * np.conj(np.fft.rfft(f, size)), size)
    max_lag = int(MAX_DELAY_S * rate / step)
    window = corr[: max_lag + 1]
    lag = int(np.argmax(window))
    norm = float(np.linalg.norm(n) * np.linalg.norm(f))
    if norm <= 0 or window[lag] / norm < 0.1:
        return None
    return round(lag * step * 1000 / rate, 1)


__all__ = ["Aligner", "EchoCanceller", "ReferenceTap", "estimate_delay_ms"]
