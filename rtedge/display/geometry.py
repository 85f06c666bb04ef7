"""Framebuffer geometry from sysfs, and the letterbox rectangle a picture is scaled into."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

# In-memory pixel layouts of the Linux framebuffer at each depth, as FFmpeg names them. These are
# the layouts of the Pi's vc4/simple-framebuffer and of fbdev drivers in general: 16 bpp RGB565
# little endian, 24 bpp RGB888 stored B,G,R, 32 bpp XRGB8888 stored B,G,R,X.
PIX_FMT = {16: "rgb565le", 24: "bgr24", 32: "bgra"}


class DisplayError(Exception):
    """The display cannot be used right now; the message is a one-line reason for /healthz."""


@dataclass(frozen=True, slots=True)
class Rect:
    x: int
    y: int
    w: int
    h: int


@dataclass(frozen=True, slots=True)
class FbGeometry:
    width: int
    height: int
    bits_per_pixel: int
    stride: int  # bytes per row, may exceed width * bytes_per_pixel (padding)

    @property
    def bytes_per_pixel(self) -> int:
        return self.bits_per_pixel // 8

    @property
    def pix_fmt(self) -> str:
        return PIX_FMT[self.bits_per_pixel]

    @property
    def size_bytes(self) -> int:
        return self.stride * self.height


def _read(sysfs: Path, name: str) -> str:
    try:
        return (sysfs / name).read_text(encoding="ascii").strip()
    except OSError as exc:
        raise DisplayError(f"{sysfs / name}: {exc.strerror or exc}") from None


def read_geometry(sysfs: Path) -> FbGeometry:
    """Geometry from a sysfs framebuffer directory (``virtual_size`` "W,H", ``bits_per_pixel``,
    ``stride``). Raises DisplayError with a reason when absent or unusable."""
    size = _read(sysfs, "virtual_size")
    bpp_text = _read(sysfs, "bits_per_pixel")
    stride_text = _read(sysfs, "stride")
    try:
        w_text, h_text = size.split(",")
        width, height = int(w_text), int(h_text)
        bpp, stride = int(bpp_text), int(stride_text)
    except ValueError:
        raise DisplayError(
            f"{sysfs}: unreadable geometry (virtual_size={size!r}, bits_per_pixel={bpp_text!r}, "
            f"stride={stride_text!r})"
        ) from None
    if bpp not in PIX_FMT:
        raise DisplayError(f"{sysfs}: {bpp} bits per pixel is not supported (16, 24 or 32)")
    if width <= 0 or height <= 0 or stride < width * (bpp // 8):
        raise DisplayError(f"{sysfs}: inconsistent geometry {width}x{height} stride {stride}")
    return FbGeometry(width, height, bpp, stride)


def letterbox(src_w: int, src_h: int, dst_w: int, dst_h: int) -> Rect:
    """The largest rectangle of the source's aspect ratio centred in the destination."""
    if src_w <= 0 or src_h <= 0:
        raise ValueError("empty source picture")
    if src_w * dst_h >= src_h * dst_w:  # wider than the screen: bars top and bottom
        w = dst_w
        h = max(1, round(dst_w * src_h / src_w))
    else:  # taller: bars left and right
        h = dst_h
        w = max(1, round(dst_h * src_w / src_h))
    return Rect((dst_w - w) // 2, (dst_h - h) // 2, w, h)
