"""What a display sink is, and the ``none`` backend.

Every method but ``show`` on a loop-side sink runs on the display thread (one thread, so a sink
needs no locks of its own and PyAV contexts are never shared across threads).
"""

from __future__ import annotations

from typing import Any, Protocol

from rtedge.display.fbdev import FramebufferSink
from rtedge.display.frames import Picture
from rtedge.display.mjpeg import MjpegSink
from rtedge.settings import DisplaySettings


class Sink(Protocol):
    name: str
    #: ``show`` is cheap and must run on the event loop (the MJPEG sink wakes asyncio viewers);
    #: otherwise it runs on the display thread (framebuffer writes).
    show_on_loop: bool

    def open(self) -> str:
        """Acquire the device; return a short description. Raise DisplayError or OSError."""
        ...

    def check(self) -> None:
        """Raise DisplayError if the device went away or changed (it is then reopened)."""
        ...

    def prepare(self, pic: Picture) -> Any:
        """Decode and convert a picture into what ``show`` writes. Raise BadFrame to skip it."""
        ...

    def show(self, prepared: Any) -> None: ...

    def close(self) -> None: ...


class NullSink:
    """``backend = "none"``: frames are paced and counted, nothing is drawn (no decode cost)."""

    name = "none"
    show_on_loop = True

    def open(self) -> str:
        return "none"

    def check(self) -> None:
        return None

    def prepare(self, pic: Picture) -> None:
        return None

    def show(self, prepared: Any) -> None:
        return None

    def close(self) -> None:
        return None


def make_sink(settings: DisplaySettings) -> Sink:
    """The sink ``settings.backend`` names."""
    if settings.backend == "fbdev":
        return FramebufferSink(settings.fbdev, settings.sysfs)
    if settings.backend == "mjpeg":
        return MjpegSink()
    return NullSink()
