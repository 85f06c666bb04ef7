"""Exercise, in one process, every library path the daemon takes, so the unit's seccomp filters
can be tried on them (tests/appliance/sandbox.py): ALSA file-plugin PCMs, gpiozero mock pins,
a memory-mapped framebuffer file, PyAV resampling and pixel conversion, sd_notify on a real
AF_UNIX socket, journald sending, an aiohttp server and client, and a real aiortc call between
two peer connections over the host's real interfaces (aioice -> ifaddr -> getifaddrs, no
override), with DTLS, SRTP, Opus and a data channel. Prints "probe ok" at the end.

    python probe_libs.py WORKDIR
"""

from __future__ import annotations

import asyncio
import fractions
import os
import socket
import sys
from pathlib import Path

import numpy as np

FRAME = 960  # 20 ms at 48 kHz


def alsa(workdir: Path) -> None:
    conf = workdir / "asound.conf"
    (workdir / "mic.raw").write_bytes(bytes(FRAME * 2 * 10))
    conf.write_text(
        f'pcm.mic {{ type file slave.pcm {{ type null }} file "/dev/null" '
        f'infile "{workdir / "mic.raw"}" format "raw" }}\n'
        f'pcm.spk {{ type file slave.pcm {{ type null }} file "{workdir / "spk.wav"}" '
        'format "wav" }\nctl.!default { type null }\n'
    )
    os.environ["ALSA_CONFIG_PATH"] = str(conf)
    import alsaaudio

    common = {"rate": 48000, "format": alsaaudio.PCM_FORMAT_S16_LE, "periodsize": FRAME}
    spk = alsaaudio.PCM(alsaaudio.PCM_PLAYBACK, device="spk", channels=2, **common)
    spk.write(bytes(FRAME * 4))
    spk.close()
    mic = alsaaudio.PCM(alsaaudio.PCM_CAPTURE, device="mic", channels=1, **common)
    size, _ = mic.read()
    assert size > 0, size
    mic.close()


def gpio() -> None:
    from gpiozero import Button, Device
    from gpiozero.pins.mock import MockFactory

    Device.pin_factory = MockFactory()
    pressed = []
    button = Button(17)
    button.when_pressed = lambda: pressed.append(1)
    button.pin.drive_low()
    assert pressed
    button.close()


def display(workdir: Path) -> None:
    import av

    fb_file = workdir / "fb0"
    fb_file.write_bytes(bytes(320 * 240 * 2))
    fb = np.memmap(fb_file, dtype=np.uint8, mode="r+", shape=(240, 320 * 2))
    frame = av.VideoFrame.from_ndarray(np.zeros((64, 64, 3), np.uint8), format="rgb24")
    out = frame.reformat(width=320, height=240, format="rgb565le")
    plane = np.frombuffer(out.planes[0], np.uint8).reshape(240, -1)[:, : 320 * 2]
    fb[:] = plane
    fb.flush()
    resampler = av.AudioResampler(format="s16", layout="mono", rate=16000)
    audio = av.AudioFrame(format="s16", layout="stereo", samples=FRAME)
    audio.sample_rate = 48000
    for plane_ in audio.planes:
        plane_.update(bytes(plane_.buffer_size))
    resampler.resample(audio)


def systemd_bits(workdir: Path) -> None:
    from systemd import daemon, journal

    path = workdir / "notify"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    os.environ["NOTIFY_SOCKET"] = str(path)
    daemon.notify("READY=1")
    assert sock.recv(100) == b"READY=1"
    journal.send("probe", RTEDGE_EVENT="probe")  # no journald here: sent nowhere, no error


async def network() -> None:
    from aiohttp import ClientSession, web
    from aiortc import MediaStreamTrack, RTCConfiguration, RTCPeerConnection
    from av import AudioFrame

    app = web.Application()
    app.router.add_get("/healthz", lambda _: web.json_response({"healthy": True}))
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    async with ClientSession() as http, http.get(f"http://127.0.0.1:{port}/healthz") as resp:
        assert resp.status == 200

    class Tone(MediaStreamTrack):
        kind = "audio"

        def __init__(self) -> None:
            super().__init__()
            self.pts = 0

        async def recv(self) -> AudioFrame:
            await asyncio.sleep(0.02)
            frame = AudioFrame(format="s16", layout="mono", samples=FRAME)
            pcm = (np.sin(np.arange(FRAME) / 10) * 8000).astype(np.int16)
            frame.planes[0].update(pcm.tobytes())
            frame.sample_rate, frame.pts = 48000, self.pts
            frame.time_base = fractions.Fraction(1, 48000)
            self.pts += FRAME
            return frame

    config = RTCConfiguration(iceServers=[])
    a, b = RTCPeerConnection(config), RTCPeerConnection(config)
    loop = asyncio.get_running_loop()
    heard: asyncio.Future[int] = loop.create_future()
    echoed: asyncio.Future[str] = loop.create_future()
    channel = a.createDataChannel("oai-events")
    channel.on("open", lambda: channel.send('{"type":"ping"}'))
    channel.on("message", lambda m: echoed.done() or echoed.set_result(m))
    b.on("datachannel", lambda ch: ch.on("message", lambda m: ch.send(m)))
    a.addTrack(Tone())
    drains = []

    def on_track(track: MediaStreamTrack) -> None:
        async def drain() -> None:
            count = 0
            while True:
                try:
                    await track.recv()
                except Exception:
                    return
                count += 1
                if count == 25 and not heard.done():
                    heard.set_result(count)

        drains.append(asyncio.ensure_future(drain()))

    b.on("track", on_track)
    await a.setLocalDescription(await a.createOffer())
    assert "a=candidate" in a.localDescription.sdp
    await b.setRemoteDescription(a.localDescription)
    await b.setLocalDescription(await b.createAnswer())
    await a.setRemoteDescription(b.localDescription)
    await asyncio.wait_for(asyncio.gather(heard, echoed), 20)
    await a.close()
    await b.close()
    for task in drains:
        await task
    await runner.cleanup()


def main() -> None:
    workdir = Path(sys.argv[1])
    alsa(workdir)
    gpio()
    display(workdir)
    systemd_bits(workdir)
    asyncio.run(network())
    print("probe ok")


if __name__ == "__main__":
    main()
