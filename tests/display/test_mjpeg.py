"""The MJPEG sink on a real aiohttp server with real client sockets: two viewers at once, and a
viewer that stops reading does not hold frames back from the other."""

from __future__ import annotations

import asyncio
import base64
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import av
import numpy as np
import pytest
from aiohttp import web

from rtedge.display.mjpeg import BOUNDARY, MjpegSink
from rtedge.display.pipeline import DisplayPipeline, ShownFrame
from rtedge.settings import DisplaySettings
from rtedge.state import State
from tests.display.helpers import AudioClock, encode_jpeg
from tests.poll import until


@dataclass
class Rig:
    pipeline: DisplayPipeline
    sink: MjpegSink
    clock: AudioClock
    url: str
    shown: list[ShownFrame] = field(default_factory=list)


@pytest.fixture(params=[False], ids=["no-avatar"])
async def rig(request: pytest.FixtureRequest) -> AsyncIterator[Rig]:
    ac = AudioClock()
    sink = MjpegSink(write_timeout_s=1.5)
    shown: list[ShownFrame] = []
    p = DisplayPipeline(
        DisplaySettings(backend="mjpeg", local_avatar=request.param),
        State(),
        clock=ac.clock,
        level=ac.level,
        onset=ac.onset,
        sink=sink,
        on_shown=shown.append,
    )
    app = web.Application()
    p.add_routes(app)  # before the server starts, as the health server does
    runner = web.AppRunner(app, shutdown_within=1.0)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    await p.start()
    yield Rig(p, sink, ac, f"http://127.0.0.1:{port}", shown)
    await p.stop()
    t = asyncio.get_running_loop().time()
    await runner.cleanup()  # open streams must not hold the shutdown
    assert asyncio.get_running_loop().time() - t < 1.0


async def read_parts(resp: aiohttp.ClientResponse, out: list[tuple[float, bytes]]) -> None:
    loop = asyncio.get_running_loop()
    while True:
        line = await resp.content.readline()
        if not line:
            return
        if line.strip() != f"--{BOUNDARY}".encode():
            continue
        headers = {}
        while (h := (await resp.content.readline()).strip()) != b"":
            k, _, v = h.decode().partition(":")
            headers[k.strip().lower()] = v.strip()
        assert headers["content-type"] == "image/jpeg"
        body = await resp.content.readexactly(int(headers["content-length"]))
        out.append((loop.time(), body))


def big_jpeg(seed: int) -> bytes:
    """512x512 noise: ~150 KB a frame, so a stalled socket's buffers fill in well under a second."""
    rng = np.random.default_rng(seed)
    return encode_jpeg(rng.integers(0, 256, (512, 512, 3), dtype=np.uint8), quality=2)


async def test_two_viewers_and_a_stalled_one_does_not_block(rig: Rig) -> None:
    jpegs = [big_jpeg(i) for i in range(8)]
    async with aiohttp.ClientSession() as http:
        fast_resp = await http.get(rig.url + "/avatar.mjpeg")
        assert fast_resp.status == 200
        assert fast_resp.headers["Content-Type"].startswith("multipart/x-mixed-replace")
        fast: list[tuple[float, bytes]] = []
        fast_task = asyncio.create_task(read_parts(fast_resp, fast))

        # The stalled viewer: a real socket with a tiny receive buffer that reads the response
        # head and then nothing more.
        raw = socket.socket()
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        raw.setblocking(False)
        port = int(rig.url.rsplit(":", 1)[1])
        await asyncio.get_running_loop().sock_connect(raw, ("127.0.0.1", port))
        reader, writer = await asyncio.open_connection(sock=raw)
        writer.write(b"GET /avatar.mjpeg HTTP/1.1\r\nHost: x\r\n\r\n")
        head = await reader.readuntil(b"\r\n\r\n")
        assert b"200 OK" in head
        await until(lambda: len(rig.sink.viewers) == 2)

        n = 75  # 3 s at 25 fps, 7.5 MB/s
        b64 = [base64.b64encode(jpegs[i % 8]).decode() for i in range(n)]  # not on the clock
        rig.clock.play()
        for i in range(n):
            rig.pipeline.on_image_delta(b64[i], "r")
        await asyncio.sleep(1.2)  # frames played for a while: the test's input
        # The stalled viewer has fallen behind (frames replaced unsent) while still connected...
        stalled = [v for v in rig.sink.viewers if v[1] > 5]
        assert len(rig.sink.viewers) == 2 and stalled, rig.sink.viewers
        # ...and is cut off after write_timeout_s; the other one keeps going.
        await until(lambda: len(rig.sink.viewers) == 1, within=3.0)
        await until(lambda: len(rig.shown) + rig.pipeline.state.frames_dropped == n, within=3.0)
        await asyncio.sleep(0.2)  # the fast viewer reads the last part sent
        fast_task.cancel()
        fast_resp.close()
        writer.close()

    shown = len(rig.shown)
    assert shown >= 0.9 * n, rig.pipeline.stats.dropped  # paced, few if any late on a busy box
    assert len(fast) >= 0.95 * shown, (len(fast), shown)
    gaps = np.diff([t for t, _ in fast[5:]])
    print(
        f"\nfast viewer: {len(fast)}/{shown} shown frames, largest gap {gaps.max() * 1e3:.0f} ms"
        f" while the other stalled (stalled viewer sent/skipped: {stalled})"
    )
    assert gaps.max() < 0.2
    assert all(body in jpegs for _, body in fast)  # the service's JPEGs pass through untouched


@pytest.mark.parametrize("rig", [True], ids=["avatar"], indirect=True)
async def test_latest_frame_is_the_local_avatar_as_jpeg(rig: Rig) -> None:
    async with aiohttp.ClientSession() as http:
        await until(lambda: rig.shown)  # the avatar draws its idle look at once
        async with http.get(rig.url + "/avatar.jpg") as r:
            assert r.status == 200 and r.content_type == "image/jpeg"
            body = await r.read()
    frame = av.CodecContext.create("mjpeg", "r").decode(av.Packet(body))[0]
    assert (frame.width, frame.height) == (360, 360)
    assert rig.shown[0].source == "avatar"


async def test_latest_frame_before_any(rig: Rig) -> None:
    async with aiohttp.ClientSession() as http, http.get(rig.url + "/avatar.jpg") as r:
        assert r.status == 503


async def test_viewer_limit(rig: Rig) -> None:
    rig.sink.max_viewers = 1
    async with aiohttp.ClientSession() as http:
        first = await http.get(rig.url + "/avatar.mjpeg")
        await until(lambda: len(rig.sink.viewers) == 1)
        async with http.get(rig.url + "/avatar.mjpeg") as second:
            assert second.status == 503
        first.close()


def test_routes_only_for_the_mjpeg_backend(tmp_path: Path) -> None:
    app = web.Application()
    p = DisplayPipeline(
        DisplaySettings(backend="none"),
        State(),
        clock=lambda: 0.0,
        level=lambda: 0.0,
        onset=lambda: None,
    )
    p.add_routes(app)
    assert not [r for r in app.router.routes() if "avatar" in str(r.resource)]


async def stalled_viewer(rig: Rig) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A viewer that reads the response head and then nothing (tiny receive buffer)."""
    raw = socket.socket()
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    raw.setblocking(False)
    port = int(rig.url.rsplit(":", 1)[1])
    await asyncio.get_running_loop().sock_connect(raw, ("127.0.0.1", port))
    reader, writer = await asyncio.open_connection(sock=raw)
    writer.write(b"GET /avatar.mjpeg HTTP/1.1\r\nHost: x\r\n\r\n")
    assert b"200 OK" in await reader.readuntil(b"\r\n\r\n")
    return reader, writer


async def test_a_closed_viewer_frees_its_slot_at_once(rig: Rig) -> None:
    rig.sink.max_viewers = 1
    async with aiohttp.ClientSession() as http:
        first = await http.get(rig.url + "/avatar.mjpeg")
        await until(lambda: len(rig.sink.viewers) == 1)
        first.close()  # no frame ever comes: only the closed connection can free the slot
        t0 = asyncio.get_running_loop().time()
        await until(lambda: not rig.sink.viewers, within=2.0)
        freed = asyncio.get_running_loop().time() - t0
        async with http.get(rig.url + "/avatar.mjpeg") as second:
            assert second.status == 200
    print(f"\nclosed viewer's slot freed in {freed * 1e3:.0f} ms")


async def test_stalled_viewers_give_way_to_a_new_one(rig: Rig) -> None:
    rig.sink.max_viewers = 2
    rig.sink.stall_s = 0.5
    rig.sink.write_timeout_s = 30.0  # it is the new viewer that must free a slot, not the timeout
    stalled = [await stalled_viewer(rig) for _ in range(2)]
    await until(lambda: len(rig.sink.viewers) == 2)
    async with aiohttp.ClientSession() as http:
        async with http.get(rig.url + "/avatar.mjpeg") as refused:
            assert refused.status == 503  # both still keeping up: nobody gives way
        frame = big_jpeg(1)
        for _ in range(60):  # fill their socket buffers: frames now wait for them
            rig.sink.show(frame)
            await asyncio.sleep(0.02)  # paced like a stream: the test's input
        await until(lambda: all(v[1] > 0 for v in rig.sink.viewers), within=3.0)
        await asyncio.sleep(0.6)  # stalled for longer than stall_s: the test's input
        resp = await http.get(rig.url + "/avatar.mjpeg")
        assert resp.status == 200
        parts: list[tuple[float, bytes]] = []
        task = asyncio.create_task(read_parts(resp, parts))
        rig.sink.show(frame)
        await until(lambda: parts, within=3.0)
        assert rig.sink.evicted == 1 and len(rig.sink.viewers) == 2
        task.cancel()
        resp.close()
    for _, writer in stalled:
        writer.close()


async def test_one_client_holds_at_most_max_per_client_streams(rig: Rig) -> None:
    rig.sink.max_per_client = 2
    async with aiohttp.ClientSession() as http:
        streams = [await http.get(rig.url + "/avatar.mjpeg") for _ in range(3)]
        assert [s.status for s in streams] == [200, 200, 200]
        await until(lambda: len(rig.sink.viewers) == 2)
        assert rig.sink.evicted == 1
        # The oldest was ended by the server: its body ends.
        async with asyncio.timeout(3):
            while await streams[0].content.readany():
                pass
        for s in streams:
            s.close()


async def test_idle_stream_gets_keepalive_frames(rig: Rig) -> None:
    rig.sink.keepalive_s = 0.3
    frame = big_jpeg(2)
    rig.sink.show(frame)
    async with aiohttp.ClientSession() as http:
        resp = await http.get(rig.url + "/avatar.mjpeg")
        parts: list[tuple[float, bytes]] = []
        task = asyncio.create_task(read_parts(resp, parts))
        await until(lambda: len(parts) >= 3, within=5.0)  # one frame shown, three received
        task.cancel()
        resp.close()
    assert all(body == frame for _, body in parts)
    assert parts[2][0] - parts[1][0] >= 0.3 - 0.01
