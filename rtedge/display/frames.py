"""Frame sources' pictures (JPEG decode in rtedge.media.jpeg), scaling into a target geometry with
one reused reformatter, and the bounded drop-oldest queue between arrival and display.

Nothing here touches the event loop: decode and scale run on the display thread (see
presenter.py). One decoder and one scaler per source kind, because PyAV's codec context and
swscale context are stateful and cache per input format.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

import av
import numpy as np
from av.video.reformatter import VideoReformatter

from rtedge.display.geometry import Rect, letterbox
from rtedge.media.jpeg import BadFrame, JpegDecoder, Pixels, jpeg_size, rgb_frame


@dataclass(frozen=True, slots=True)
class JpegPicture:
    """A service frame as it arrived: base64 JPEG, decoded only on the display thread."""

    b64: str
    max_pixels: int | None = None
    """Frames declaring more pixels are refused from their header, before any decoding: a
    16000x16000 JPEG of 500 KB would otherwise take ~1 GB to decode (or to show in a browser)."""

    def jpeg(self) -> bytes:
        try:
            data = base64.b64decode(self.b64, validate=False)
        except (binascii.Error, ValueError) as exc:
            raise BadFrame(f"bad base64: {exc}") from None
        if data[:2] != b"\xff\xd8":
            raise BadFrame("not a JPEG (no SOI marker)")
        width, height = jpeg_size(data)
        if width == 0 or height == 0:
            raise BadFrame("JPEG declares an empty frame")
        if self.max_pixels is not None and width * height > self.max_pixels:
            raise BadFrame(f"JPEG {width}x{height} over max_frame_pixels ({self.max_pixels})")
        return data


@dataclass(frozen=True, slots=True)
class VideoPicture:
    """A frame already decoded by aiortc from the remote RTP video track."""

    frame: av.VideoFrame


@dataclass(frozen=True, slots=True)
class RgbPicture:
    """A frame drawn locally (the avatar): H x W x 3 RGB."""

    rgb: Pixels


Picture = JpegPicture | VideoPicture | RgbPicture


def to_frame(pic: Picture, decoder: JpegDecoder) -> av.VideoFrame:
    """Any picture as a VideoFrame (decoding a service JPEG). Display thread only."""
    if isinstance(pic, JpegPicture):
        return decoder.decode(pic.jpeg())
    if isinstance(pic, VideoPicture):
        return pic.frame
    return rgb_frame(pic.rgb)


class Scaler:
    """Scale a frame once into the letterbox rectangle of a target, in the target's pixel format,
    with one reused VideoReformatter (it keeps its swscale context while input and output hold).

    Returns rows trimmed to the picture width: a view on the reformatted frame's plane, so the
    only copy after scaling is the one into the framebuffer.
    """

    def __init__(self, width: int, height: int, pix_fmt: str, bytes_per_pixel: int) -> None:
        self.width, self.height = width, height
        self.pix_fmt = pix_fmt
        self.bytes_per_pixel = bytes_per_pixel
        self._reformatter = VideoReformatter()

    def scale(self, frame: av.VideoFrame) -> tuple[Rect, Pixels]:
        rect = letterbox(frame.width, frame.height, self.width, self.height)
        # threads=1: on 2-4 small cores swscale's slice threads cost more than they save at this
        # size (measured: 0.6 ms single-threaded vs 1.2 ms auto for 512->720 rgb565le).
        out = self._reformatter.reformat(frame, rect.w, rect.h, self.pix_fmt, threads=1)
        plane = out.planes[0]
        # to_ndarray() has no rgb565le, and line_size may include padding: read the plane raw.
        rows = np.frombuffer(memoryview(plane), dtype=np.uint8).reshape(rect.h, plane.line_size)
        return rect, rows[:, : rect.w * self.bytes_per_pixel]


T = TypeVar("T")


class DropOldestQueue(Generic[T]):
    """Bounded FIFO for the event loop: a put into a full queue drops the oldest item and reports
    it to ``on_drop`` (the producer must never wait: it is a network callback)."""

    def __init__(self, maxlen: int, on_drop: Callable[[T], None]) -> None:
        if maxlen < 1:
            raise ValueError("maxlen must be at least 1")
        self._items: deque[T] = deque()
        self._maxlen = maxlen
        self._on_drop = on_drop
        self._ready = asyncio.Event()

    def __len__(self) -> int:
        return len(self._items)

    def put(self, item: T) -> None:
        if len(self._items) >= self._maxlen:
            self._on_drop(self._items.popleft())
        self._items.append(item)
        self._ready.set()

    async def get(self) -> T:
        while not self._items:
            self._ready.clear()
            await self._ready.wait()
        return self._items.popleft()

    def drain(self) -> list[T]:
        items = list(self._items)
        self._items.clear()
        return items
