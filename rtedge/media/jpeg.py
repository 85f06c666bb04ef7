"""RGB pictures and JPEG with PyAV: frame size from the header, decode, encode (display, peer)."""

from __future__ import annotations

from fractions import Fraction

import av
import numpy as np
import numpy.typing as npt
from av.video.reformatter import VideoReformatter

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
