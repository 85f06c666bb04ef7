"""The peer's outgoing audio: one MediaStreamTrack per call that always flows.

aiortc pulls ``recv()`` from its RTP sender loop; this track paces that loop to real time and hands
out 20 ms frames: a response's audio when some is queued, silence otherwise (a WebRTC client sees a
steady stream, as from OpenAI). Because each frame is taken from the queue only when it is due,
clearing the queue takes effect on the very next frame: within 20 ms.

Responses queue their audio as ``Playout``s; the track reports when a playout starts and when it
has drained, which is when the session sends ``output_audio_buffer.started`` / ``stopped``.
``LiveOutput`` is the GPT-Live session's track.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

import av
import numpy as np
from aiortc import MediaStreamTrack
from aiortc.mediastreams import MediaStreamError

from rtedge.media.dsp import FRAME_SAMPLES, TIME_BASE
from rtedge.peer.audio_in import RATE, Pcm

FRAME_S: Final = FRAME_SAMPLES / RATE
LIVE_MAX_FRAMES: Final = 5  # loopback jitter buffer: 100 ms, oldest dropped beyond
#: A frame sent this much after its due time counts as late: three frames, more than a receiver's
#: jitter buffer absorbs without a gap. (Smaller delays are scheduling noise, caught up at once.)
LATE_MS: Final = 60.0

log = logging.getLogger(__name__)


@dataclass(eq=False, slots=True)
class Playout:
    """The audio of one response item on its way out."""

    response_id: str
    item_id: str
    chunks: deque[Pcm] = field(default_factory=deque)
    queued_samples: int = 0
    played_samples: int = 0
    finished: bool = False  # no more audio will be added
    started: bool = False
    progress: asyncio.Event = field(default_factory=asyncio.Event)  # set as frames are taken

    @property
    def played_ms(self) -> int:
        return self.played_samples * 1000 // RATE

    @property
    def unplayed_s(self) -> float:
        return (self.queued_samples - self.played_samples) / RATE

    def add(self, pcm: Pcm) -> None:
        if pcm.size:
            self.chunks.append(pcm)
            self.queued_samples += pcm.size

    def take(self, n: int) -> Pcm:
        """Up to ``n`` samples from the front."""
        parts: list[Pcm] = []
        need = n
        while need and self.chunks:
            head = self.chunks[0]
            if head.size <= need:
                parts.append(self.chunks.popleft())
                need -= head.size
            else:
                parts.append(head[:need])
                self.chunks[0] = head[need:]
                need = 0
        out = np.concatenate(parts) if parts else np.zeros(0, dtype=np.int16)
        self.played_samples += out.size
        self.progress.set()
        return out


class OutputTrack(MediaStreamTrack):
    kind = "audio"

    def __init__(
        self,
        on_started: Callable[[Playout], None],
        on_drained: Callable[[Playout], None],
        *,
        idle_rtp: bool = True,
    ) -> None:
        super().__init__()
        #: False: no RTP while nothing plays (a service with silence between replies); the
        #: RTP timestamps then jump over the gap, as after a real pause in sending.
        self._idle_rtp = idle_rtp
        self._has_audio = asyncio.Event()
        self._on_started = on_started
        self._on_drained = on_drained
        self._queue: deque[Playout] = deque()
        self._live: deque[Pcm] = deque(maxlen=LIVE_MAX_FRAMES)
        self._flowing = asyncio.Event()
        self._flowing.set()
        self._start: float | None = None
        self._pts = 0
        self._levels: deque[float] = deque([0.0, 0.0], maxlen=2)
        self.frames_out = 0
        self.voiced_frames_out = 0
        self.late_frames = 0
        self.max_late_ms = 0.0

    # -- what the session uses -------------------------------------------------------------
    def play(self, playout: Playout) -> None:
        self._queue.append(playout)
        self._has_audio.set()

    def clear(self, response_id: str | None = None) -> list[Playout]:
        """Drop every queued playout (of ``response_id`` only, when given) now; the next frame
        sent is silence. Returns what was dropped (the first one may have been partly played:
        see ``played_ms``)."""
        dropped = [p for p in self._queue if response_id in (None, p.response_id)]
        for playout in dropped:
            self._queue.remove(playout)
        return dropped

    def stop(self) -> None:
        super().stop()
        self._has_audio.set()

    @property
    def playing(self) -> Playout | None:
        return self._queue[0] if self._queue else None

    def feed_live(self, pcm: Pcm) -> None:
        """Loopback mode: send this received frame straight back."""
        self._live.append(pcm)
        self._has_audio.set()

    def level(self) -> float:
        """Loudness (RMS, 0..1) of the last 40 ms sent: what the client is hearing now."""
        return max(self._levels)

    def pause(self) -> None:
        """Stop sending RTP (the ``stop_rtp`` fault); the connection stays up."""
        self._flowing.clear()

    def resume(self) -> None:
        self._start = None  # restart pacing rather than bursting the missed frames
        self._flowing.set()

    @property
    def paused(self) -> bool:
        return not self._flowing.is_set()

    # -- what aiortc's RTP sender calls ------------------------------------------------------
    async def recv(self) -> av.AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        await self._flowing.wait()
        loop = asyncio.get_running_loop()
        if not self._idle_rtp and not self._queue and not self._live:
            began = loop.time()
            self._has_audio.clear()
            await self._has_audio.wait()
            if self.readyState != "live":
                raise MediaStreamError
            skipped = int((loop.time() - began) * RATE) // FRAME_SAMPLES * FRAME_SAMPLES
            self._pts += skipped
            self._start = None  # pace afresh from now
        if self._start is None:
            self._start = loop.time() - self._pts / RATE
        due = self._start + self._pts / RATE
        wait = due - loop.time()
        if wait > 0:
            await asyncio.sleep(wait)
        else:
            late_ms = -wait * 1000.0
            self.max_late_ms = max(self.max_late_ms, late_ms)
            if late_ms > LATE_MS:
                self.late_frames += 1
        if self.readyState != "live":
            raise MediaStreamError
        pcm = self._next_pcm()
        frame = av.AudioFrame.from_ndarray(pcm.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = RATE
        frame.pts = self._pts
        frame.time_base = TIME_BASE
        self._pts += FRAME_SAMPLES
        self.frames_out += 1
        return frame

    def _next_pcm(self) -> Pcm:
        out = np.zeros(FRAME_SAMPLES, dtype=np.int16)
        filled = 0
        while filled < FRAME_SAMPLES and self._queue:
            head = self._queue[0]
            if not head.started and head.chunks:
                head.started = True
                self._notify(self._on_started, head)
            got = head.take(FRAME_SAMPLES - filled)
            out[filled : filled + got.size] = got
            filled += got.size
            if head.chunks:
                break
            if not head.finished:
                break  # generation has not caught up: the rest of this frame is silence
            self._queue.popleft()
            self._notify(self._on_drained, head)
        if filled == 0 and self._live:
            live = self._live.popleft()
            n = min(live.size, FRAME_SAMPLES)
            out[:n] = live[:n]
            filled = n
        if filled:
            self.voiced_frames_out += 1
            rms = float(np.sqrt(np.mean(np.square(out.astype(np.float32))))) / 32768.0
        else:
            rms = 0.0
        self._levels.append(rms)
        return out

    def _notify(self, callback: Callable[[Playout], None], playout: Playout) -> None:
        # Callbacks run inside aiortc's sender loop: an exception there would silently stop the
        # call's audio, so it is logged and contained here.
        try:
            callback(playout)
        except Exception:
            log.exception("output audio callback failed")


class LiveOutput(OutputTrack):
    """The outgoing track, which also notes when it last sent a voiced frame (to measure how
    fast the peer yields to a user who speaks over it)."""

    last_voiced_at: float = 0.0

    def _next_pcm(self) -> Pcm:
        before = self.voiced_frames_out
        pcm = super()._next_pcm()
        if self.voiced_frames_out != before:
            self.last_voiced_at = time.monotonic()
        return pcm
