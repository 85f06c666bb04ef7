"""MJPEG-over-HTTP sink for a kiosk browser: ``GET /avatar.mjpeg`` (multipart/x-mixed-replace)
and ``GET /avatar.jpg`` (latest frame), served by the health server.

Each viewer has its own one-frame slot holding only the newest JPEG: publishing overwrites every
slot and never waits, so a slow or stalled viewer skips frames (or is cut off after
``write_timeout_s``) while the others keep their rate. A shared queue would let the slowest
reader hold everyone back.

Slots are scarce (``max_viewers``), so they are given back quickly: a viewer that closed its
connection is noticed within ``POLL_S`` (not at the next frame, which may be long in coming);
an idle stream resends the newest frame every ``keepalive_s`` (a dead peer shows up as a failed
write); a viewer that takes no frames for ``stall_s`` gives way to a new one when all slots are
taken; and one client address holds at most ``max_per_client`` streams (its oldest gives way:
a reloaded page gets its picture back).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

from aiohttp import web

from rtedge.display.frames import JpegPicture, Picture, to_frame
from rtedge.media.jpeg import JpegDecoder, JpegEncoder

log = logging.getLogger(__name__)

BOUNDARY = "rtedgeframe"
#: How often a waiting stream checks that its viewer is still connected.
POLL_S = 0.25


class _Slot:
    """The newest frame not yet sent to one viewer. Loop thread only."""

    __slots__ = ("client", "closed", "frame", "opened", "pending_since", "ready", "sent", "skipped")

    def __init__(self, client: str) -> None:
        self.client = client
        self.frame: bytes | None = None
        self.closed = False
        self.ready = asyncio.Event()
        self.sent = 0
        self.skipped = 0  # frames replaced before this viewer could take them
        self.opened = self.pending_since = time.monotonic()

    def stalled_for(self, now: float) -> float:
        """How long a frame has waited for this viewer (0 when it is keeping up)."""
        return now - self.pending_since if self.frame is not None else 0.0

    def offer(self, frame: bytes) -> None:
        if self.frame is not None:
            self.skipped += 1  # replaces an unsent one: this viewer skips it, nobody waits
        else:
            self.pending_since = time.monotonic()
        self.frame = frame
        self.ready.set()

    def close(self) -> None:
        self.closed = True
        self.ready.set()

    async def take(self, alive: Callable[[], bool], idle_s: float) -> bytes | None:
        """The next frame; b"" after ``idle_s`` without one; None once closed or dead."""
        deadline = time.monotonic() + idle_s
        while True:
            if self.closed or not alive():
                return None
            if self.frame is not None:
                frame, self.frame = self.frame, None
                self.ready.clear()
                return frame
            left = deadline - time.monotonic()
            if left <= 0:
                return b""
            self.ready.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(min(POLL_S, left)):
                    await self.ready.wait()


class MjpegSink:
    name = "mjpeg"
    show_on_loop = True

    def __init__(
        self,
        *,
        max_viewers: int = 8,
        max_per_client: int = 4,
        write_timeout_s: float = 10.0,
        keepalive_s: float = 5.0,
        stall_s: float = 2.0,
    ) -> None:
        self.max_viewers = max_viewers
        self.max_per_client = max_per_client
        self.write_timeout_s = write_timeout_s
        self.keepalive_s = keepalive_s
        self.stall_s = stall_s
        self.evicted = 0
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

    def _make_room(self, client: str) -> bool:
        """Free a slot for a new viewer from ``client`` if one may be freed; False if not."""
        mine = sorted((s for s in self._viewers if s.client == client), key=lambda s: s.opened)
        if len(mine) >= self.max_per_client:
            self._evict(mine[0])
        if len(self._viewers) < self.max_viewers:
            return True
        now = time.monotonic()
        stalled = [s for s in self._viewers if s.stalled_for(now) >= self.stall_s]
        if not stalled:
            return False
        self._evict(max(stalled, key=lambda s: s.stalled_for(now)))
        return True

    def _evict(self, slot: _Slot) -> None:
        self.evicted += 1
        slot.close()
        self._viewers.discard(slot)  # its stream ends at its next wake-up

    async def handle_stream(self, request: web.Request) -> web.StreamResponse:
        client = request.remote or "?"
        if not self._make_room(client):
            return web.Response(status=503, text="too many viewers\n", headers={"Retry-After": "2"})
        resp = web.StreamResponse(
            headers={
                "Content-Type": f"multipart/x-mixed-replace; boundary={BOUNDARY}",
                "Cache-Control": "no-store",
            }
        )
        await resp.prepare(request)
        slot = _Slot(client)
        if self.latest is not None:
            slot.offer(self.latest)  # a new viewer sees a picture at once, not at the next frame
        self._viewers.add(slot)

        def alive() -> bool:
            transport = request.transport
            return transport is not None and not transport.is_closing()

        try:
            while (frame := await slot.take(alive, self.keepalive_s)) is not None:
                if not frame:
                    if self.latest is None:
                        continue
                    frame = self.latest  # idle: the newest frame again keeps the stream alive
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
