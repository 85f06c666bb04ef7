"""Linux framebuffer sink: the device mapped into memory as a numpy array, pictures scaled once
into their letterbox rectangle in the framebuffer's own pixel format and copied in.

A regular file of the right size works in place of ``/dev/fb0`` (tests), with a sysfs-like
directory giving the geometry.
"""

from __future__ import annotations

import mmap
import os
import stat
from pathlib import Path

import av
import numpy as np

from rtedge.display.frames import JpegPicture, Picture, RgbPicture, Scaler, to_frame
from rtedge.display.geometry import DisplayError, FbGeometry, Rect, read_geometry
from rtedge.media.jpeg import JpegDecoder, Pixels

# Black in each layout. The 32 bpp X byte is set like the scaler sets alpha, so bars and picture
# agree on drivers that do honour it.
_BLACK = {16: b"\x00\x00", 24: b"\x00\x00\x00", 32: b"\x00\x00\x00\xff"}

Prepared = tuple[Rect, Pixels]


class FramebufferSink:
    name = "fbdev"
    show_on_loop = False

    def __init__(self, device: Path, sysfs: Path) -> None:
        self.device = device
        self.sysfs = sysfs
        self.geometry: FbGeometry | None = None
        self._map: mmap.mmap | None = None
        self._view: Pixels | None = None  # height x stride bytes, aliasing the device memory
        self._rect: Rect | None = None  # where the last picture went: bars change with it
        self._last: Prepared | None = None  # the last picture, to repaint what a band uncovers
        self._band: Pixels | None = None  # captions, in the device's format, kept over pictures
        self._decoder = JpegDecoder()
        # One scaler per source kind: each keeps its swscale context for its own input format.
        self._scalers: dict[type[Picture], Scaler] = {}

    def open(self) -> str:
        geo = read_geometry(self.sysfs)
        try:
            fd = os.open(self.device, os.O_RDWR)
        except OSError as exc:
            raise DisplayError(f"{self.device}: {exc.strerror or exc}") from None
        try:
            st = os.fstat(fd)
            if stat.S_ISREG(st.st_mode) and st.st_size < geo.size_bytes:
                raise DisplayError(
                    f"{self.device}: {st.st_size} bytes, geometry needs {geo.size_bytes}"
                )
            try:
                self._map = mmap.mmap(
                    fd, geo.size_bytes, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE
                )
            except (OSError, ValueError) as exc:
                raise DisplayError(f"{self.device}: cannot map: {exc}") from None
        finally:
            os.close(fd)  # the mapping keeps the device open
        self._view = np.frombuffer(self._map, dtype=np.uint8).reshape(geo.height, geo.stride)
        self.geometry = geo
        self._scalers.clear()
        self._rect = None
        self._last = self._band = None
        self._fill_black(self._view[:, : geo.width * geo.bytes_per_pixel])
        return f"fbdev {self.device} {geo.width}x{geo.height} {geo.bits_per_pixel}bpp"

    def check(self) -> None:
        # A hotplugged HDMI screen can change the mode: reopen with the new geometry.
        if not self.device.exists():
            raise DisplayError(f"{self.device}: device gone")
        if read_geometry(self.sysfs) != self.geometry:
            raise DisplayError(f"{self.sysfs}: geometry changed")

    def prepare(self, pic: Picture) -> Prepared:
        geo = self.geometry
        if geo is None:
            raise DisplayError("framebuffer not open")
        kind = type(pic)
        scaler = self._scalers.get(kind)
        if scaler is None:
            scaler = Scaler(geo.width, geo.height, geo.pix_fmt, geo.bytes_per_pixel)
            self._scalers[kind] = scaler
        if isinstance(pic, RgbPicture | JpegPicture):
            return scaler.scale(to_frame(pic, self._decoder))
        return scaler.scale(pic.frame)

    def show(self, prepared: Prepared) -> None:
        view, geo = self._view, self.geometry
        if view is None or geo is None:
            raise DisplayError("framebuffer not open")
        rect, rows = prepared
        bpp = geo.bytes_per_pixel
        if rect != self._rect:
            self._clear_bars(view, geo, rect)
            self._rect = rect
        view[rect.y : rect.y + rect.h, rect.x * bpp : (rect.x + rect.w) * bpp] = rows
        self._last = prepared
        if self._band is not None:
            view[geo.height - self._band.shape[0] :, : geo.width * bpp] = self._band

    def set_band(self, rgb: Pixels | None) -> None:
        """Put an RGB picture as wide as the screen at its bottom, over every later picture
        until replaced; None removes it and repaints what it covered."""
        view, geo = self._view, self.geometry
        if view is None or geo is None:
            raise DisplayError("framebuffer not open")
        old = self._band
        if rgb is None:
            self._band = None
        else:
            rgb = np.ascontiguousarray(rgb[-geo.height :, : geo.width])
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            scaler = Scaler(geo.width, frame.height, geo.pix_fmt, geo.bytes_per_pixel)
            self._band = np.array(scaler.scale(frame)[1])  # same size: a format conversion
        if old is not None and (self._band is None or self._band.shape[0] < old.shape[0]):
            # Uncovered rows: the last picture again (bars included), else black.
            if self._last is not None:
                self._rect = None
                self.show(self._last)
                return
            self._fill_black(view[geo.height - old.shape[0] :, : geo.width * geo.bytes_per_pixel])
        if self._band is not None:
            view[geo.height - self._band.shape[0] :, : geo.width * geo.bytes_per_pixel] = self._band

    def close(self) -> None:
        # Views must go before the mapping: mmap.close() refuses while buffers are exported.
        self._view = None
        self._rect = None
        self._last = self._band = None
        if self._map is not None:
            self._map.close()
            self._map = None

    def _clear_bars(self, view: Pixels, geo: FbGeometry, rect: Rect) -> None:
        bpp = geo.bytes_per_pixel
        row_bytes = geo.width * bpp
        self._fill_black(view[: rect.y, :row_bytes])
        self._fill_black(view[rect.y + rect.h :, :row_bytes])
        band = view[rect.y : rect.y + rect.h]
        self._fill_black(band[:, : rect.x * bpp])
        self._fill_black(band[:, (rect.x + rect.w) * bpp : row_bytes])

    def _fill_black(self, region: Pixels) -> None:
        if region.size == 0 or self.geometry is None:
            return
        pattern = np.frombuffer(_BLACK[self.geometry.bits_per_pixel], dtype=np.uint8)
        # One black row broadcast over the region: works on any strided view, never a copy.
        region[:] = np.tile(pattern, region.shape[1] // pattern.size)
