"""Frame sources' pictures, JPEG decode (PyAV), scaling into a target geometry with one reused
reformatter, and the bounded drop-oldest queue between arrival and display.

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
from fractions import Fraction
from typing import Generic, TypeVar

import av
import numpy as np
import numpy.typing as npt
from av.video.reformatter import VideoReformatter

from rtedge.display.geometry import Rect, letterbox

Pixels = npt.NDArray[np.uint8]


class BadFrame(Exception):
    """A frame that cannot be decoded (bad base64, not a JPEG); dropped and counted."""


#: Start-of-frame markers (SOF0-SOF15 but DHT, JPG and DAC, which share the range).
_SOF_MARKERS = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
_STANDALONE = frozenset(range(0xD0, 0xDA)) | {0x01}  # RSTn, SOI, EOI, TEM: no length


def jpeg_size(data: bytes) -> tuple[int, int]:
    """(width, height) from a JPEG's frame header, read without decoding anything."""
    pos = 2
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            raise BadFrame("JPEG header: marker expected")
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker in _STANDALONE:
            pos += 2
            continue
        length = int.from_bytes(data[pos + 2 : pos + 4], "big")
        if marker in _SOF_MARKERS:
            if length < 7 or pos + 9 > len(data):
                raise BadFrame("JPEG header: short frame header")
            height = int.from_bytes(data[pos + 5 : pos + 7], "big")
            width = int.from_bytes(data[pos + 7 : pos + 9], "big")
            return width, height
        if marker == 0xDA or length < 2:  # scan data before any frame header
            break
        pos += 2 + length
    raise BadFrame("JPEG header: no frame header")


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


class JpegDecoder:
    """JPEG bytes -> VideoFrame with one reused MJPEG codec context (no container, no probing).
    Not thread-safe: use it from one thread."""

    def __init__(self) -> None:
        self._ctx = av.CodecContext.create("mjpeg", "r")

    def decode(self, data: bytes) -> av.VideoFrame:
        try:
            frames = self._ctx.decode(av.Packet(data))
        except av.error.FFmpegError as exc:
            self._ctx = av.CodecContext.create("mjpeg", "r")  # state after an error is unknown
            raise BadFrame(f"JPEG decode failed: {exc}") from None
        if not frames:
            raise BadFrame("JPEG decode gave no picture")
        frame: av.VideoFrame = frames[-1]
        return frame


class JpegEncoder:
    """VideoFrame -> JPEG bytes (for the MJPEG page), reusing the encoder while the size holds."""

    def __init__(self, quality: int = 5) -> None:
        self._quality = quality  # MJPEG qscale: 2 best .. 31 worst; 5 is visually clean
        self._ctx: av.VideoCodecContext | None = None
        self._reformatter = VideoReformatter()

    def encode(self, frame: av.VideoFrame) -> bytes:
        # Even sizes: yuvj420p halves chroma; odd sizes would be rejected by the encoder.
        w, h = frame.width & ~1, frame.height & ~1
        ctx = self._ctx
        if ctx is None or ctx.width != w or ctx.height != h:
            ctx = av.CodecContext.create("mjpeg", "w")
            ctx.width, ctx.height = w, h
            ctx.pix_fmt = "yuvj420p"
            ctx.time_base = Fraction(1, 25)
            ctx.qmin = ctx.qmax = self._quality
            self._ctx = ctx
        yuv = self._reformatter.reformat(frame, w, h, "yuvj420p", threads=1)
        packets = ctx.encode(yuv)
        if not packets:
            raise BadFrame("JPEG encoder gave no packet")
        return bytes(packets[0])


def rgb_frame(rgb: Pixels) -> av.VideoFrame:
    return av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")


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
