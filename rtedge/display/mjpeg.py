"""MJPEG-over-HTTP sink for a kiosk browser: ``GET /avatar.mjpeg`` (multipart/x-mixed-replace)
and ``GET /avatar.jpg`` (latest frame), served by the health server.

Each viewer has its own one-frame slot holding only the newest JPEG: publishing overwrites every
slot and never waits, so a slow or stalled viewer skips frames (or is cut off after
``write_timeout_s``) while the others keep their rate. A shared queue would let the slowest
reader hold everyone back.
"""

from __future__ import annotations

import asyncio
import logging

from aiohttp import web

from rtedge.display.frames import (
    JpegDecoder,
    JpegEncoder,
    JpegPicture,
    Picture,
    to_frame,
)

log = logging.getLogger(__name__)

BOUNDARY = "rtedgeframe"


class _Slot:
    """The newest frame not yet sent to one viewer. Loop thread only."""

    __slots__ = ("closed", "frame", "ready", "sent", "skipped")

    def __init__(self) -> None:
        self.frame: bytes | None = None
        self.closed = False
        self.ready = asyncio.Event()
        self.sent = 0
        self.skipped = 0  # frames replaced before this viewer could take them

    def offer(self, frame: bytes) -> None:
        if self.frame is not None:
            self.skipped += 1  # replaces an unsent one: this viewer skips it, nobody waits
        self.frame = frame
        self.ready.set()

    def close(self) -> None:
        self.closed = True
        self.ready.set()

    async def take(self) -> bytes | None:
        """The next frame, or None once closed."""
        while True:
            if self.closed:
                return None
            if self.frame is not None:
                frame, self.frame = self.frame, None
                self.ready.clear()
                return frame
            self.ready.clear()
            await self.ready.wait()


class MjpegSink:
    name = "mjpeg"
    show_on_loop = True

    def __init__(self, *, max_viewers: int = 8, write_timeout_s: float = 10.0) -> None:
        self.max_viewers = max_viewers
        self.write_timeout_s = write_timeout_s
        self.latest: bytes | None = None
        self._viewers: set[_Slot] = set()
        self._decoder = JpegDecoder()
        self._encoder = JpegEncoder()

    @property
    def viewers(self) -> list[tuple[int, int]]:
        """(frames sent, frames skipped) per connected viewer."""
        return [(slot.sent, slot.skipped) for slot in self._viewers]

    # -- Sink protocol ------------------------------------------------------------------------

    def open(self) -> str:
        return "mjpeg"

    def check(self) -> None:
        return None

    def prepare(self, pic: Picture) -> bytes:
        if isinstance(pic, JpegPicture):
            return pic.jpeg()  # the service's JPEG goes out as it came: no decode, no re-encode
        return self._encoder.encode(to_frame(pic, self._decoder))

    def show(self, prepared: bytes) -> None:
        self.latest = prepared
        for slot in self._viewers:
            slot.offer(prepared)

    def close(self) -> None:
        return None  # viewers stay connected across a pipeline restart; see close_viewers

    # -- HTTP ---------------------------------------------------------------------------------

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get("/avatar.mjpeg", self.handle_stream)
        app.router.add_get("/avatar.jpg", self.handle_latest)
        app.on_shutdown.append(self._on_shutdown)

    async def handle_latest(self, request: web.Request) -> web.Response:
        if self.latest is None:
            return web.Response(status=503, text="no frame yet\n", headers={"Retry-After": "1"})
        return web.Response(
            body=self.latest, content_type="image/jpeg", headers={"Cache-Control": "no-store"}
        )

    async def handle_stream(self, request: web.Request) -> web.StreamResponse:
        if len(self._viewers) >= self.max_viewers:
            return web.Response(status=503, text="too many viewers\n")
        resp = web.StreamResponse(
            headers={
                "Content-Type": f"multipart/x-mixed-replace; boundary={BOUNDARY}",
                "Cache-Control": "no-store",
            }
        )
        await resp.prepare(request)
        slot = _Slot()
        if self.latest is not None:
            slot.offer(self.latest)  # a new viewer sees a picture at once, not at the next frame
        self._viewers.add(slot)
        try:
            while (frame := await slot.take()) is not None:
                head = (
                    f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\n"
                    f"Content-Length: {len(frame)}\r\n\r\n"
                ).encode("ascii")
                # write() waits for the socket to drain: only this viewer's task waits.
                async with asyncio.timeout(self.write_timeout_s):
                    await resp.write(head + frame + b"\r\n")
                slot.sent += 1
        except TimeoutError:
            log.info("avatar viewer %s stalled; disconnecting it", request.remote)
            if request.transport is not None:
                request.transport.abort()  # a graceful close would wait on the same full buffer
        except (ConnectionError, RuntimeError):
            pass  # viewer went away (aiohttp raises ClientConnectionResetError, a ConnectionError)
        finally:
            self._viewers.discard(slot)
        return resp

    def close_viewers(self) -> None:
        for slot in list(self._viewers):
            slot.close()

    async def _on_shutdown(self, app: web.Application) -> None:
        # Streams never end by themselves; without this the server's shutdown waits them out.
        self.close_viewers()
