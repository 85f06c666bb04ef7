"""Captions on the framebuffer: follows State on the event loop, and when what the screen should
say changes, draws the band on the display thread (never on the loop, never in the audio path)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from rtedge.display.caption_render import CaptionRenderer
from rtedge.display.captions import CaptionPacer, CaptionView
from rtedge.display.geometry import DisplayError, FbGeometry
from rtedge.display.presenter import Presenter
from rtedge.media.jpeg import Pixels
from rtedge.settings import DisplaySettings
from rtedge.state import State, Turn

log = logging.getLogger(__name__)

#: While a reply is on its way or playing the caption advances with the audio: 25 checks a second.
PACE_TICK_S = 0.04
#: Otherwise only a quiet-period clear can come due without a State change.
IDLE_TICK_S = 0.25


class BandSink(Protocol):
    """A sink that keeps a band over its pictures (the framebuffer)."""

    geometry: FbGeometry | None

    def set_band(self, rgb: Pixels | None) -> None: ...


@dataclass(frozen=True, slots=True)
class DrawnCaption:
    """One band put on the screen: ``audio_clock`` is the playback clock then (seconds
    played), ``at`` time.monotonic(), ``render_s`` the thread time spent drawing it."""

    view: CaptionView
    audio_clock: float
    at: float
    render_s: float


def has_band(sink: object) -> bool:
    return callable(getattr(sink, "set_band", None))


class CaptionLayer:
    def __init__(
        self,
        settings: DisplaySettings,
        state: State,
        *,
        clock: Callable[[], float],
        onset: Callable[[], float | None],
        wall: Callable[[], float] = time.monotonic,
        on_drawn: Callable[[DrawnCaption], None] | None = None,
    ) -> None:
        """``clock``: the audio playback clock; ``onset``: not None while voice is audible at
        the speaker (the display pipeline's own inputs)."""
        self.settings = settings
        self.state = state
        self._clock = clock
        self._onset = onset
        self.pacer = CaptionPacer(
            pace_cps=settings.caption_pace_cps, clear_after_s=settings.caption_clear_s, clock=wall
        )
        #: Called on the loop after each band is on the screen (tests, benchmarks).
        self.on_drawn = on_drawn
        self.drawn: CaptionView | None = None
        self.draws = 0
        self._renderer: CaptionRenderer | None = None
        self._drawn_open = -1  # presenter.open_attempts the band was drawn for
        self._wake = asyncio.Event()
        # a plain function: State keeps its listeners for the daemon's lifetime
        state.subscribe(lambda _: self._wake.set())

    async def run(self, presenter: Presenter) -> None:
        """Until cancelled: draw whenever the view changes or the display was reopened."""
        while True:
            view = self.pacer.update(self.state, self._clock(), self._onset() is not None)
            if presenter.ready and (
                view != self.drawn or presenter.open_attempts != self._drawn_open
            ):
                await self._draw(presenter, view)
            pacing = self.state.turn in (Turn.THINKING, Turn.SPEAKING)
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(PACE_TICK_S if pacing else IDLE_TICK_S):
                    await self._wake.wait()

    async def _draw(self, presenter: Presenter, view: CaptionView) -> None:
        opened = presenter.open_attempts
        try:
            render_s = await presenter.call(self._paint, presenter.sink, view)
        except (DisplayError, OSError, ValueError) as exc:
            log.debug("captions not drawn: %s", exc)  # the presenter notices a failed display
            return
        self.drawn, self._drawn_open = view, opened
        self.draws += 1
        if self.on_drawn is not None:
            self.on_drawn(DrawnCaption(view, self._clock(), time.monotonic(), render_s))

    def _paint(self, sink: BandSink, view: CaptionView) -> float:
        """On the display thread: render with Pillow and put the band on the screen."""
        t0 = time.thread_time()
        geo = sink.geometry
        if geo is None:
            raise DisplayError("framebuffer not open")
        s = self.settings
        if self._renderer is None or self._renderer.width != geo.width:
            self._renderer = CaptionRenderer(
                geo.width,
                font_path=s.caption_font,
                font_size=s.caption_font_size,
                lines=s.caption_lines,
                direction=s.caption_direction,
            )
        r = self._renderer
        rgb = r.render(view)
        if view.empty:
            rgb = rgb[: 2 * r.pad + r.small_h]  # just the indicator: uncover the avatar
        sink.set_band(rgb)
        return time.thread_time() - t0


__all__ = ["PACE_TICK_S", "CaptionLayer", "DrawnCaption", "has_band"]
