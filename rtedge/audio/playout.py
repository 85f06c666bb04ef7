"""The playout buffer: received audio queued for the speaker, bounded, taken a period at a time.

Pure bookkeeping (no device, no thread of its own): ``push`` / ``flush`` / ``add_earcon`` come
from the event loop, ``take`` from the playback thread, so one lock guards the queues.
"""

from __future__ import annotations

import collections
import threading

import numpy as np

from rtedge.media.dsp import SILENCE_RMS, Int16Array, apply_gain, rms

SKIP_SILENCE_AFTER_S = 0.2
"""Silence that long is a pause between utterances (pauses inside speech are shorter)."""
BURST_S = 0.08
"""Audio held beyond the target depth before the oldest is dropped: a burst that comes late
after a network stall is played rather than cut (the depth comes back down in the next pause)."""


class PlayoutBuffer:
    """Interleaved device-format samples waiting to be played, ``target_frames`` deep when a
    reply starts and never more than ``capacity_frames``; earcons are mixed in as taken."""

    def __init__(
        self, *, rate: int, channels: int, period_frames: int, latency_frames: int, volume: float
    ) -> None:
        self.channels = channels
        self.volume = volume
        self.target_frames = max(latency_frames, period_frames)
        self.capacity_frames = self.target_frames + int(BURST_S * rate) + period_frames
        self._priming = True  # the buffer ran dry: wait for target_frames before playing
        self._zeros: Int16Array = np.zeros(0, dtype=np.int16)
        self._lock = threading.Lock()
        # queued audio, each chunk with its level (RMS after the volume): computed once here,
        # on the loop, rather than every period on the playback thread
        self._chunks: collections.deque[tuple[Int16Array, float]] = collections.deque()
        self._buffered = 0  # frames in _chunks
        self._earcons: collections.deque[Int16Array] = collections.deque()
        self.frames_dropped = 0  # sound dropped from a full buffer (heard as a skip)
        self.frames_shed = 0  # silence dropped from a full buffer (not heard)
        self.frames_skipped = 0  # silence not queued in a long pause (see push)
        self.silence_periods = 0  # periods taken with nothing to play
        self._silent_run = 0  # frames of silence pushed since the last sound
        self._skip_after_frames = int(SKIP_SILENCE_AFTER_S * rate)

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
        ch = self.channels
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
        ch = self.channels
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
        """Empty the buffer now; the next reply waits for the target depth again."""
        with self._lock:
            self._chunks.clear()
            self._buffered = 0
            self._priming = True

    def add_earcon(self, samples: Int16Array) -> None:
        with self._lock:
            self._earcons.append(samples)

    def take(self, frames: int) -> tuple[Int16Array, float]:
        """Up to ``frames`` of speech (padded with silence), earcons mixed, volume applied.
        Returns the samples and the level of the speech alone (earcons excluded).

        Once the buffer has run dry (at the start, after a flush, when the stream stalled), it
        plays nothing until it holds its target depth again: a reply starts with that much in
        hand against the next stall, rather than stuttering from an empty buffer."""
        ch = self.channels
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


__all__ = ["BURST_S", "SKIP_SILENCE_AFTER_S", "PlayoutBuffer"]
