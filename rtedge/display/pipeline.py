"""The display pipeline: frames in, the local avatar, pacing, the sink; follows the turn in State.

The avatar display as the rest of rtedge sees it: frames in (rtAV JPEG events, an RTP video
track), the local avatar when there are none, paced to the audio playback clock and shown on the
configured sink. Everything here runs on the event loop and never blocks it: decode, scaling and
device writes happen on the display thread (presenter.py).
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

import av
from aiohttp import web
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from rtedge.display.avatar import LocalAvatar
from rtedge.display.caption_layer import CaptionLayer, has_band
from rtedge.display.frames import DropOldestQueue, JpegPicture, RgbPicture, VideoPicture
from rtedge.display.mjpeg import MjpegSink
from rtedge.display.pacing import (
    Anchoring,
    Due,
    DueFn,
    Outcome,
    Timeline,
    VideoTimeline,
    present_paced,
)
from rtedge.display.presenter import Presenter
from rtedge.display.shown import DisplayStats, ShownFrame
from rtedge.display.sinks import Sink, make_sink
from rtedge.display.sprites import load_art
from rtedge.settings import DisplaySettings
from rtedge.state import State, Turn

log = logging.getLogger(__name__)

# Kept per pipeline, not per response: only the newest few responses can still have frames.
_MAX_TIMELINES = 16


@dataclass(frozen=True, slots=True)
class _ServiceFrame:
    timeline: Timeline
    index: int
    pic: JpegPicture


@dataclass(frozen=True, slots=True)
class _VideoFrame:
    frame: av.VideoFrame
    due: float


def _fixed(due: float) -> Callable[[], float]:
    return lambda: due


class DisplayPipeline:
    def __init__(
        self,
        settings: DisplaySettings,
        state: State,
        *,
        clock: Callable[[], float],
        level: Callable[[], float],
        onset: Callable[[], float | None],
        sink: Sink | None = None,
        service_fps: float | None = None,
        queue_frames: int = 125,
        video_queue_frames: int = 4,
        video_delay_s: float = 0.06,
        anchor_timeout_s: float = 2.0,
        audio_delay_s: float = 0.10,
        avatar_resume_s: float = 30.0,
        avatar_size: int = 360,
        retry_initial_s: float = 0.5,
        retry_max_s: float = 10.0,
        on_shown: Callable[[ShownFrame], None] | None = None,
    ) -> None:
        """``clock``: the audio playback clock (seconds played, monotonic, counting silence);
        ``level``: RMS 0..1 of the audio playing now; ``onset``: the clock value where the current
        non-silent playback run began, None while silent. The keywords after those are tuning and
        test seams (``sink`` replaces the one ``settings.backend`` names)."""
        self.settings = settings
        self.state = state
        self._clock = clock
        self._level = level
        self._onset = onset
        self.sink: Sink = sink if sink is not None else make_sink(settings)
        self.fps = float(service_fps or settings.fps)
        self._period = 1.0 / self.fps
        self._video_queue_frames = video_queue_frames
        self._video_delay_s = video_delay_s
        self._avatar_resume_s = avatar_resume_s
        self._retry = (retry_initial_s, retry_max_s)
        #: Called on the loop with each frame put on the display (metrics, tests, benchmarks).
        self.on_shown = on_shown
        self.stats = DisplayStats()
        self._anchoring = Anchoring(
            self.fps, audio_delay_s=audio_delay_s, anchor_timeout_s=anchor_timeout_s
        )
        self._queue: DropOldestQueue[_ServiceFrame] = DropOldestQueue(
            queue_frames, lambda item: self._drop("service", "queue")
        )
        self._timelines: OrderedDict[str, Timeline] = OrderedDict()
        self._anon = 0  # frames without a response id share a timeline until its done event
        self._turn = Turn.IDLE
        self._speaking_since: float | None = None
        # The turn comes from State, as the LED's does: the conversation only writes it there.
        self._followed = state.turn
        state.subscribe(self._on_state)
        self._avatar = (
            LocalAvatar(load_art(settings.avatar_dir, avatar_size))
            if settings.local_avatar
            else None
        )
        self._service_seen = -1e9  # loop time of the last service frame (JPEG or video)
        self._jpeg_seen = -1e9
        self._presenter: Presenter | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._avatar_shown = 0
        self.captions: CaptionLayer | None = None
        if settings.captions and has_band(self.sink):
            self.captions = CaptionLayer(settings, state, clock=clock, onset=onset)
        elif settings.captions:
            log.warning("captions are drawn on the framebuffer only (the /kiosk page shows them)")

    # -- lifecycle ----------------------------------------------------------------------------

    async def start(self) -> None:
        """Open the sink in the background (a missing display is reported in State and retried;
        it never raises here) and start pacing."""
        if self._tasks:
            return
        self._presenter = Presenter(
            self.sink, self.state, retry_initial_s=self._retry[0], retry_max_s=self._retry[1]
        )
        self._tasks = [
            asyncio.create_task(self._presenter.run(), name="display-sink"),
            asyncio.create_task(self._service_loop(), name="display-service"),
        ]
        if self._avatar is not None:
            self._tasks.append(asyncio.create_task(self._avatar_loop(), name="display-avatar"))
        if self.captions is not None:
            run = self.captions.run(self._presenter)
            self._tasks.append(asyncio.create_task(run, name="display-captions"))

    async def stop(self) -> None:
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for _ in self._queue.drain():
            self._drop("service", "stopped")
        if self._presenter is not None:
            await self._presenter.close()
            self._presenter = None

    def add_routes(self, app: web.Application) -> None:
        """``GET /avatar.mjpeg`` and ``GET /avatar.jpg`` when the backend is ``mjpeg``."""
        if isinstance(self.sink, MjpegSink):
            self.sink.add_routes(app)

    def _on_state(self, state: State) -> None:
        if state.turn is not self._followed:  # listeners hear every update; act on a new turn
            self._followed = state.turn
            self._follow_turn(state.turn)

    def _follow_turn(self, turn: Turn) -> None:
        """The conversation's turn (followed from State): the local avatar's look; and LISTENING
        (the user pressed to talk, or barged in) ends every response's pending frames, as its
        audio was flushed."""
        if turn is Turn.SPEAKING and self._turn is not Turn.SPEAKING:
            # output_audio_buffer.started: a response's audio begins to arrive now.
            self._speaking_since = self._clock()
        elif turn is not Turn.SPEAKING:
            self._speaking_since = None
        self._turn = turn
        if turn is Turn.LISTENING:
            for tl in self._timelines.values():
                tl.done = tl.cancelled = True

    # -- service frames (rtAV JPEG events) ----------------------------------------------------

    def _timeline(self, response_id: str | None, create: bool) -> Timeline | None:
        key = response_id if response_id is not None else f"\0anon{self._anon}"
        tl = self._timelines.get(key)
        if tl is None and create:
            for other in self._timelines.values():
                other.done = True  # a newer response supersedes older ones
            tl = Timeline(key, response_id, self._clock())
            self._timelines[key] = tl
            while len(self._timelines) > _MAX_TIMELINES:
                self._timelines.popitem(last=False)
        return tl

    def on_image_delta(self, jpeg_b64: str, response_id: str | None) -> None:
        """One rtAV ``response.output_image.delta`` frame. Cheap on the loop: the base64 text is
        queued as is; decoding happens on the display thread when the frame is nearly due."""
        tl = self._timeline(response_id, create=True)
        assert tl is not None
        index = tl.received
        tl.received += 1
        self.stats.received["service"] += 1
        now = asyncio.get_running_loop().time()
        self._service_seen = self._jpeg_seen = now
        self._queue.put(
            _ServiceFrame(tl, index, JpegPicture(jpeg_b64, self.settings.max_frame_pixels))
        )

    def on_image_done(self, response_id: str | None, total_frames: int | None) -> None:
        """``response.output_image.done``: no more frames for that response. Frames the service
        counted but that never arrived are counted as dropped ("lost")."""
        tl = self._timeline(response_id, create=False)
        received = tl.received if tl is not None else 0
        if total_frames is not None and total_frames > received:
            self._drop("service", "lost", total_frames - received)
        if tl is not None:
            tl.done = True
            tl.total = total_frames
        if response_id is None:
            self._anon += 1

    def on_response_done(self, response_id: str | None, *, cancelled: bool = False) -> None:
        """The response ended (``response.done``) or was cancelled. Its pending frames are
        dropped (counted): at once when ``cancelled`` (pass it for status "cancelled"); otherwise
        once its audio is over, i.e. the turn is no longer SPEAKING (output_audio_buffer.stopped)
        and playback has been silent for 0.3 s. Over WebRTC response.done comes when generation
        ends, often well before the audio (and its frames) have played, so it cannot end them by
        itself. None means every response."""
        if response_id is None:
            targets = list(self._timelines.values())
            self._anon += 1
        else:
            tl = self._timeline(response_id, create=False)
            targets = [tl] if tl is not None else []
        for tl in targets:
            tl.done = True
            tl.cancelled = tl.cancelled or cancelled

    async def _service_loop(self) -> None:
        anchoring = self._anchoring
        while True:
            item = await self._queue.get()
            tl, index = item.timeline, item.index

            def due(tl: Timeline = tl, index: int = index) -> Due:
                return anchoring.due(tl, self._clock(), self._onset(), index, self._speaking_since)

            await self._present("service", item.pic, due, tl.response_id, index)

    async def _present(
        self,
        source: str,
        pic: JpegPicture | VideoPicture,
        due_fn: DueFn,
        response_id: str | None,
        index: int,
    ) -> None:
        presenter = self._presenter
        if presenter is None:
            self._drop(source, Outcome.DOWN)
            return
        try:
            outcome, due, shown = await present_paced(
                presenter, pic, due_fn, self._clock, period=self._period
            )
        except asyncio.CancelledError:
            self._drop(source, "stopped")  # in hand when its stream or the pipeline stopped
            raise
        if outcome is Outcome.SHOWN and shown is not None:
            if self._avatar is not None:
                self._avatar.invalidate()
            self._shown(ShownFrame(source, response_id, index, due, shown))
        else:
            self._drop(source, outcome)

    # -- RTP video ----------------------------------------------------------------------------

    async def consume_video(self, track: MediaStreamTrack) -> None:
        """Drain a remote video track until it ends, showing its frames paced by their RTP
        timestamps. Always drains (aiortc buffers without bound otherwise), even while the display
        is down or the JPEG frames of a response are showing (those take precedence)."""
        loop = asyncio.get_running_loop()
        timeline = VideoTimeline(self._video_delay_s)
        queue: DropOldestQueue[_VideoFrame] = DropOldestQueue(
            self._video_queue_frames, lambda item: self._drop("video", "queue")
        )
        pacer = asyncio.create_task(self._video_loop(queue), name="display-video")
        index = 0
        try:
            while True:
                try:
                    frame = await track.recv()
                except MediaStreamError:
                    return
                if not isinstance(frame, av.VideoFrame):
                    continue
                self.stats.received["video"] += 1
                now = loop.time()
                if len(self._queue) or now - self._jpeg_seen < 1.0:
                    self._drop("video", "superseded")
                    continue
                self._service_seen = now
                queue.put(_VideoFrame(frame, timeline.due(frame, self._clock())))
                index += 1
        finally:
            pacer.cancel()
            await asyncio.gather(pacer, return_exceptions=True)
            for _ in queue.drain():
                self._drop("video", "ended")

    async def _video_loop(self, queue: DropOldestQueue[_VideoFrame]) -> None:
        index = 0
        while True:
            item = await queue.get()
            await self._present("video", VideoPicture(item.frame), _fixed(item.due), None, index)
            index += 1

    # -- local avatar -------------------------------------------------------------------------

    def _service_active(self, now: float) -> bool:
        return len(self._queue) > 0 or now - self._service_seen < self._avatar_resume_s

    async def _avatar_loop(self) -> None:
        avatar = self._avatar
        assert avatar is not None
        loop = asyncio.get_running_loop()
        t0 = next_tick = loop.time()
        while True:
            now = loop.time()
            speaking = False
            if self._service_active(now):
                avatar.invalidate()  # redraw at once when the service's frames stop
                avatar.follower.reset()
            else:
                look, opening, changed = avatar.tick(
                    self._turn, self._onset() is not None, self._level(), now - t0
                )
                speaking = look is Turn.SPEAKING
                if speaking or changed:
                    await self._draw_avatar(look, opening, now - t0)
            # Absolute schedule so the rate holds at fps; after a stall, restart rather than burst.
            next_tick += self._period if speaking else 0.1
            now = loop.time()
            if next_tick < now - self._period:
                next_tick = now
            await asyncio.sleep(max(0.0, next_tick - now))

    async def _draw_avatar(self, look: Turn, opening: float, t: float) -> None:
        presenter, avatar = self._presenter, self._avatar
        if presenter is None or avatar is None or not presenter.ready:
            if avatar is not None:
                avatar.invalidate()  # draw it once the display is back
            return
        rgb = await presenter.call(avatar.art.render, look, opening, t)
        ok, prepared = await presenter.prepare(RgbPicture(rgb))
        if ok and await presenter.show(prepared):
            self._shown(ShownFrame("avatar", None, self._avatar_shown, None, self._clock()))
            self._avatar_shown += 1
        else:
            avatar.invalidate()

    # -- accounting ---------------------------------------------------------------------------

    def _shown(self, frame: ShownFrame) -> None:
        # Plain increments, not State.update(): listeners (LED, STATUS=) need not wake 25x/s.
        self.state.frames_shown += 1
        self.state.frames_by_source[frame.source] += 1
        self.stats.shown[frame.source] += 1
        if self.on_shown is not None:
            self.on_shown(frame)

    def _drop(self, source: str, reason: str, n: int = 1) -> None:
        self.state.frames_dropped += n
        self.state.count_drop("display", n)
        self.stats.dropped[f"{source}.{reason}"] += n


__all__ = ["DisplayPipeline", "DisplayStats", "ShownFrame", "make_sink"]
