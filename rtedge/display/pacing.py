"""Display pacing: when each frame is due on the audio clock, and the wait-prepare-show step.

When a frame is due on the audio playback clock, and the wait-prepare-show step shared by the
service and video sources.

Service frames (rtAV JPEG events): frame i of a response is due at ``anchor + i / fps``, where the
anchor is the clock value at which that response's audio starts playing. The clock counts
silence, so audio position p of the response plays at ``anchor + p`` through any pause.

Finding that start: the playback path reports ``onset``, where audible sound began, but a
response often opens with silence (a TTS lead-in; echoed input), and its frames start with it: an
anchor on the onset would put every frame late by the lead-in (measured: 0.76 s with the local
peer in echo mode). The start is taken instead from when the response's audio began to arrive,
``output_audio_buffer.started`` (the conversation's turn turning SPEAKING), plus the delay from
arrival to the speaker. An onset earlier than that estimate wins: audio cannot be heard before it
starts. Without a SPEAKING turn (a service without those events) the onset is the anchor.

That delay is the configured one (``audio_delay_s``) or less, never more. A response's onset minus
its start is the delay plus the response's lead-in, which the appliance cannot see (the stream
carries silence before and after a response starts alike): so each such sample only says the delay
is at most that much. The estimate is the smallest of the last few and the configured value. A
sample above the configured value is no evidence of a longer delay: the lead-in may be short (an
echoed answer opens with ~80 ms of silence, the mic-to-service latency) and, taken as the delay,
would put every later response's frames that much late.

RTP video: due at ``anchor + pts`` with the anchor fixed when the stream starts (arrival plus the
audio path's extra delay). aiortc exposes no RTCP sender reports, so there is no cross-stream
lip-sync reference to do better with.
"""

from __future__ import annotations

import asyncio
import math
from collections import deque
from collections.abc import Awaitable, Callable
from enum import StrEnum
from fractions import Fraction
from typing import Any, Protocol

import av

from rtedge.display.frames import Picture

RTP_VIDEO_TIME_BASE = Fraction(1, 90000)


class Ended:
    """Returned by a due function when the frame can never be shown."""


ENDED = Ended()
Due = float | None | Ended


class Timeline:
    """One response's frames on the audio clock. Loop thread only."""

    __slots__ = (
        "anchor",
        "audio_anchored",
        "cancelled",
        "created",
        "done",
        "heard",
        "key",
        "received",
        "response_id",
        "sounded",
        "start",
        "total",
    )

    def __init__(self, key: str, response_id: str | None, created: float) -> None:
        self.key = key
        self.response_id = response_id
        self.created = created  # clock when its first frame arrived
        self.start: float | None = None  # clock when its audio began to arrive (SPEAKING)
        self.anchor: float | None = None  # clock at which frame 0 is due
        self.audio_anchored = False  # anchored on its audio (not on the no-audio timeout)
        self.heard = created  # last clock at which audio was playing, once anchored
        self.sounded = False  # its audio has been heard since it was anchored
        self.received = 0
        self.total: int | None = None  # total_frames from response.output_image.done
        self.done = False  # no more frames coming (image done, response done, or superseded)
        self.cancelled = False


class Anchoring:
    """Finds each response's anchor (see the module docstring) and tells when its frames are
    over.

    Once anchored, frames stay on ``anchor + i / fps`` through quiet stretches: the playback path
    reports silence by level, so a pause between words ends a "run" just as an underrun would,
    and the clock keeps counting either way. Shifting frames at every pause would desynchronise
    them; an underrun (rare, tens of ms) is left to the late-frame rule.
    """

    #: A SPEAKING turn that began this long before a response's first frame is still its start.
    START_WINDOW_S = 2.0

    def __init__(
        self,
        fps: float,
        *,
        audio_delay_s: float = 0.10,
        anchor_timeout_s: float = 2.0,
        end_silence_s: float = 0.3,
    ) -> None:
        self.period = 1.0 / fps
        self.default_delay_s = audio_delay_s
        self.anchor_timeout_s = anchor_timeout_s
        self.end_silence_s = end_silence_s
        # Onset-minus-start of recent responses: each is an upper bound of the delay.
        self._delays: deque[float] = deque(maxlen=8)
        # The newest onset seen while a response's frames were being paced: without a start
        # marker, a later response must start in a later run (B's frames arriving while A's
        # audio still plays must not anchor to A's audio).
        self.last_onset = -math.inf

    @property
    def delay_s(self) -> float:
        """Arrival-to-speaker delay: the configured one, or the smallest recent sample when that
        is less. A sample is the delay plus the response's lead-in, so the smallest is the
        tightest bound; one above the configured delay may be a short lead-in and is not used."""
        return min((self.default_delay_s, *self._delays))

    def observe(
        self,
        tl: Timeline,
        now: float,
        onset: float | None,
        index: int,
        speaking_since: float | None = None,
    ) -> None:
        if now < self.last_onset:  # the clock restarted (playback device reopened)
            self.last_onset = -math.inf
            self._delays.clear()
        if (
            tl.start is None
            and speaking_since is not None
            and speaking_since >= tl.created - self.START_WINDOW_S
        ):
            tl.start = speaking_since
        if tl.anchor is None:
            self._anchor(tl, now, onset, index)
        elif onset is not None:
            if not tl.sounded and tl.start is not None and onset >= tl.start:
                self._learn(onset - tl.start)  # first sound after anchoring on the estimate
            tl.sounded = True
            tl.heard = now
            self.last_onset = max(self.last_onset, onset)

    def _anchor(self, tl: Timeline, now: float, onset: float | None, index: int) -> None:
        if tl.start is not None:
            estimate = tl.start + self.delay_s
            # Its own audio: heard no earlier than it began to arrive.
            if onset is not None and tl.start <= onset <= estimate:
                tl.anchor = onset
                self._learn(onset - tl.start)
            elif now >= estimate:
                tl.anchor = estimate  # silent lead-in (or no sound yet): trust the start
            else:
                return
            tl.audio_anchored = True
            tl.heard = now
            if onset is not None and onset >= tl.start:
                tl.sounded = True
                self.last_onset = max(self.last_onset, onset)
        elif onset is not None and onset > self.last_onset:
            tl.anchor = self.last_onset = onset
            tl.audio_anchored = tl.sounded = True
            tl.heard = now
        elif now - tl.created >= self.anchor_timeout_s:
            # No audio came for these frames: show them from now at their own rate.
            tl.anchor = now - index * self.period

    def _learn(self, delay: float) -> None:
        # Every sample is kept, also those above the configured delay (lead-ins): they age the
        # window, so one unusually low sample does not hold the estimate down for good.
        if delay >= 0.0:
            self._delays.append(delay)

    def ended(self, tl: Timeline, now: float, onset: float | None, speaking: bool = False) -> bool:
        """True when the response's remaining frames can no longer go with its audio: it was
        cancelled, or it is done, the service is no longer sending its audio (``speaking`` is
        False: output_audio_buffer.stopped/cleared) and playback has been silent for
        ``end_silence_s``. ``response.done`` alone is not the end: over WebRTC it comes when
        generation finishes, often well before the audio has played."""
        if tl.cancelled:
            return True
        return (
            tl.done
            and tl.audio_anchored
            and not speaking
            and onset is None
            and now - tl.heard >= self.end_silence_s
        )

    def due(
        self,
        tl: Timeline,
        now: float,
        onset: float | None,
        index: int,
        speaking_since: float | None = None,
    ) -> Due:
        """Frame ``index``'s due time; None while waiting for the response's audio to start;
        ENDED when the frame can never be shown. ``speaking_since``: clock when the turn last
        turned SPEAKING, None while it is not SPEAKING."""
        self.observe(tl, now, onset, index, speaking_since)
        if self.ended(tl, now, onset, speaking_since is not None):
            return ENDED
        if tl.anchor is None:
            return None
        return tl.anchor + index * self.period


class VideoTimeline:
    """Due times for RTP video frames: stream position (pts) on an anchor set at the start."""

    def __init__(self, delay_s: float, *, resync_s: float = 1.0) -> None:
        self.delay_s = delay_s
        self.resync_s = resync_s
        self.anchor: float | None = None
        self._pts0: int | None = None

    def due(self, frame: av.VideoFrame, arrival: float) -> float:
        expected = arrival + self.delay_s
        if frame.pts is None:
            return expected
        if self._pts0 is None:
            self._pts0 = frame.pts
        tb = frame.time_base or RTP_VIDEO_TIME_BASE
        # Through numerator/denominator: newer PyAV has its own rational type, not a Fraction.
        pos = (frame.pts - self._pts0) * tb.numerator / tb.denominator
        if self.anchor is None or abs(self.anchor + pos - expected) > self.resync_s:
            # First frame, or the stream jumped (sender restart, long stall): start over here.
            self.anchor = expected - pos
        return self.anchor + pos


class Outcome(StrEnum):
    SHOWN = "shown"
    LATE = "late"  # more than one frame period behind the audio
    ENDED = "ended"  # its response ended or was cancelled before it was due
    BAD = "bad_frame"  # could not be decoded
    DOWN = "display_down"  # the display is missing or failed


DueFn = Callable[[], Due]


class Shows(Protocol):
    """The display thread's two steps (rtedge.display.presenter.Presenter)."""

    async def prepare(self, pic: Picture) -> tuple[bool, Any]: ...

    async def show(self, prepared: Any) -> bool: ...


async def present_paced(
    presenter: Shows,
    pic: Picture,
    due_fn: DueFn,
    clock: Callable[[], float],
    *,
    period: float,
    lead_s: float = 0.06,
    poll_s: float = 0.01,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> tuple[Outcome, float | None, float | None]:
    """Wait until the frame is nearly due (``due_fn`` None means not anchored yet), prepare it
    on the display thread, wait until due, show it. Early frames wait; a frame more than one
    ``period`` behind is dropped. Returns (outcome, due, clock when shown).

    Waits are sliced to ``poll_s``: the anchor may move while waiting (an audio underrun), and the
    audio clock need not run at exactly the loop clock's rate. ``clock`` and ``sleep`` are the
    audio clock and the loop's sleep; unit tests give a synthetic pair.
    """
    prepared: Any = None
    have = False
    while True:
        now = clock()
        due = due_fn()
        if isinstance(due, Ended):
            return Outcome.ENDED, None, None
        if due is None:
            await sleep(poll_s)
            continue
        if now - due > period:
            return Outcome.LATE, due, None
        if not have and due - now <= lead_s:
            ok, prepared = await presenter.prepare(pic)
            if not ok:
                return Outcome(prepared), due, None
            have = True
            continue  # preparing took time: look at the clock again
        if have and now >= due - 0.0005:
            break
        await sleep(min(max(due - now - (lead_s if not have else 0.0), 0.0), poll_s))
    if not await presenter.show(prepared):
        return Outcome.DOWN, due, None
    return Outcome.SHOWN, due, clock()
