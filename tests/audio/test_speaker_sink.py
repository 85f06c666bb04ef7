"""The speaker sink's barge-in mute on real ``av.AudioFrame``s as aiortc delivers them: what is
discarded after ``mute_in_flight`` and when playing resumes (stream time, no sleeps)."""

from __future__ import annotations

from typing import Any

import av
import numpy as np
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from rtedge.audio.tracks import SpeakerSink
from rtedge.media.dsp import FRAME_SAMPLES, TIME_BASE, WEBRTC_RATE


def frame(pts: int, loud: bool) -> av.AudioFrame:
    level = 8000 if loud else 0
    samples = np.full((1, FRAME_SAMPLES * 2), level, dtype=np.int16)  # stereo, interleaved
    f = av.AudioFrame.from_ndarray(samples, format="s16", layout="stereo")
    f.sample_rate, f.pts, f.time_base = WEBRTC_RATE, pts, TIME_BASE
    return f


class Script(MediaStreamTrack):
    """Frames in stream order; ``at`` (frame index) runs ``action`` before that frame."""

    kind = "audio"

    def __init__(self, pattern: str, actions: dict[int, Any]) -> None:
        super().__init__()
        self.pattern = pattern  # "L" loud frame, "q" quiet frame, "_" a frame never sent
        self.actions = actions
        self.i = 0

    async def recv(self) -> av.AudioFrame:
        while self.i < len(self.pattern):
            i, self.i = self.i, self.i + 1
            if i in self.actions:
                self.actions[i]()
            if self.pattern[i] != "_":
                return frame(i * FRAME_SAMPLES, self.pattern[i] == "L")
        raise MediaStreamError


async def played(pattern: str, mute_at: int, **mute: Any) -> str:
    """What reached the speaker, in order (the frames not listed were discarded)."""
    out: list[str] = []
    sink: SpeakerSink | None = None
    script = Script(pattern, {mute_at: lambda: sink and sink.mute_in_flight(**mute)})
    sink = SpeakerSink(
        script,
        rate=WEBRTC_RATE,
        channels=1,
        push=lambda s: out.append("L" if np.abs(s).max() > 0 else "q"),
        holdoff_s=0.5,
    )
    await sink.run()
    assert len(out) + sink.frames_discarded == sum(c != "_" for c in pattern)
    return "".join(out)


async def test_one_quiet_frame_ends_the_mute_by_default() -> None:
    # a cancelled reply's tail, one quiet frame, then the next reply
    assert await played("LLLL" + "LLq" + "LLLL", mute_at=4) == "LLLL" + "q" + "LLLL"


async def test_a_pause_inside_the_reply_does_not_end_a_long_quiet_mute() -> None:
    # the reply goes on after a 0.2 s pause (10 frames); the model yields with 0.6 s of quiet
    reply = "LLLL" + "q" * 10 + "LLLLLL" + "q" * 30 + "LLL"
    got = await played("LLLL" + reply, mute_at=4, quiet_s=0.5, holdoff_s=3.0)
    # nothing of the cut reply played; the quiet after 0.5 s of it and the answer did
    assert got == "LLLL" + "q" * 6 + "LLL", got


async def test_the_holdoff_ends_a_mute_the_stream_never_satisfies() -> None:
    got = await played("LL" + "L" * 40, mute_at=2, quiet_s=0.5, holdoff_s=0.5)
    assert got == "LL" + "L" * 15, got  # 25 frames (0.5 s of stream time) discarded


async def test_a_gap_in_the_stream_ends_the_mute_at_once() -> None:
    got = await played("LL" + "LL" + "____" + "LLL", mute_at=2, quiet_s=0.5, holdoff_s=3.0)
    assert got == "LL" + "LLL", got
