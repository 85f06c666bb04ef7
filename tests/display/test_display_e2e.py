"""The display end to end: the appliance (in this process, so the test can watch each frame it
shows) in a call with ``rtedge peer`` (a real process) over real WebRTC on loopback, the peer in
rtAV image mode sending avatar JPEGs while its voice plays; real ALSA file devices for the mic
and speaker; a file framebuffer. Measured: frames shown vs frames the peer sent, and lip sync
taken from the pixels (the peer's mouth) against the speaker file (what was actually played)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("rtedge.peer.server", reason="needs the local peer (rtedge peer)")
pytest.importorskip("rtedge.audio.pipeline", reason="needs the audio pipeline (playback clock)")

from gpiozero import Device  # noqa: E402
from gpiozero.pins.mock import MockFactory  # noqa: E402

from rtedge.app import Appliance  # noqa: E402
from rtedge.display.pipeline import ShownFrame  # noqa: E402
from rtedge.settings import Settings  # noqa: E402
from rtedge.state import Connection, Turn  # noqa: E402
from tests.audio.alsa_rig import AlsaRig, MicFeeder, feed_mic, sine  # noqa: E402
from tests.display.helpers import FakeFb, make_fb  # noqa: E402
from tests.poll import until  # noqa: E402
from tests.support import Peer, free_port  # noqa: E402

RATE = 48000
PIN = 17
FB_W, FB_H = 320, 240


@dataclass
class Rig:
    alsa: AlsaRig
    feeder: MicFeeder
    peer: Peer
    fb: FakeFb
    pins: MockFactory
    frames: list[tuple[ShownFrame, int]] = field(default_factory=list)  # (frame, mouth px)

    def speaker(self) -> np.ndarray:
        """Left channel of everything played, float; sample n played at clock n / RATE."""
        return self.alsa.speaker_samples().reshape(-1, 2)[:, 0].astype(np.float32) / 32768


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    alsa = AlsaRig(tmp_path)
    alsa.write_conf()
    feeder, _ = alsa.make_mic()
    feeder.start()
    alsa.make_speaker()
    peer = Peer(tmp_path, "--mode", "echo").start()
    old = Device.pin_factory
    pins = MockFactory()
    Device.pin_factory = pins
    try:
        yield Rig(alsa, feeder, peer, make_fb(tmp_path, FB_W, FB_H, 32), pins)
    finally:
        Device.pin_factory = old
        feeder.stop()
        peer.kill()


def mouth_pixels(rgb: np.ndarray) -> int:
    """Dark pixels where the peer's face has its mouth (lower middle of the letterboxed face)."""
    side = min(FB_W, FB_H)
    x0 = (FB_W - side) // 2
    region = rgb[int(side * 0.55) : int(side * 0.85), x0 + int(side * 0.3) : x0 + int(side * 0.7)]
    return int(np.count_nonzero(region.max(axis=2) < 80))


@pytest.fixture
async def app(rig: Rig) -> AsyncIterator[Appliance]:
    settings = Settings.model_validate(
        {
            "realtime": {
                # The GA session plus rtAV's image modality: the peer then streams avatar JPEGs.
                "provider": "local",
                "session": {"modalities": ["audio", "text", "image"]},
                "url": rig.peer.calls_url,
                "api_key": "test-key",
                "connect_timeout_s": 5,
                "liveness_timeout_s": 5,
            },
            "audio": {"capture_device": "rtmic", "playback_device": "rtspk", "earcons": False},
            "ptt": {"gpio_pin": PIN},
            "display": {
                "backend": "fbdev",
                "fbdev": str(rig.fb.device),
                "sysfs": str(rig.fb.sysfs),
                "local_avatar": False,
            },
            "health": {"listen": f"127.0.0.1:{free_port()}"},
            "reconnect": {"initial_s": 0.3, "max_s": 2, "jitter": 0.1},
        }
    )
    appliance = Appliance(settings)
    assert appliance.display is not None
    fbmap = np.memmap(rig.fb.device, dtype=np.uint8, mode="r")

    def on_shown(frame: ShownFrame) -> None:
        rgb = fbmap.reshape(FB_H, FB_W, 4)[..., [2, 1, 0]]
        rig.frames.append((frame, mouth_pixels(rgb)))

    appliance.display.on_shown = on_shown
    stop = asyncio.Event()
    task = asyncio.create_task(appliance.run(stop))
    try:
        await until(lambda: appliance.state.connection is Connection.CONNECTED, within=10)
        yield appliance
    finally:
        stop.set()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(task, 8)


def lip_sync_lag(rig: Rig, response_id: str | None) -> tuple[float, float]:
    """The delay of picture behind sound (s) that best lines the mouth up with the speaker's
    loudness, and the correlation there. Positive: the picture is late (sound ahead)."""
    speaker = rig.speaker()
    frames = [(f, m) for f, m in rig.frames if f.response_id == response_id]
    times = np.array([f.shown for f, _ in frames])
    mouth = np.array([m for _, m in frames], float)
    window = RATE // 100  # 10 ms

    def loud_at(t: np.ndarray) -> np.ndarray:
        out = np.zeros(t.size)
        for k, tk in enumerate(t):
            n = int(tk * RATE)
            seg = speaker[max(0, n - window) : max(0, n + window)]
            out[k] = 20 * np.log10(np.sqrt(np.mean(seg**2)) + 1e-5) if seg.size else -100
        return out

    lags = np.arange(-0.3, 0.3001, 0.005)
    corrs = np.array([np.corrcoef(mouth, loud_at(times - d))[0, 1] for d in lags])
    # Frames are 40 ms apart, so the correlation is flat over a frame's width around the best
    # lag: take the middle of that plateau rather than its first point.
    best = float(np.nanmax(corrs))
    plateau = lags[corrs >= best - 0.005]
    return float(np.median(plateau)), best


async def turn(rig: Rig, app: Appliance, pcm: np.ndarray, lead_in_s: float) -> str:
    """One push-to-talk turn; the echo peer answers with the same audio (and avatar frames).
    ``lead_in_s`` of silence before the sound: the answer opens with it too."""
    pin: Any = rig.pins.pin(PIN)
    if lead_in_s == 0:
        sound = feed_mic(rig.feeder, pcm)  # sound from the first captured period: no lead-in
        pin.drive_low()
    else:
        pin.drive_low()
        await until(lambda: app.state.turn is Turn.LISTENING, within=2)
        await asyncio.sleep(lead_in_s)  # the silence before the sound: the test's input
        sound = feed_mic(rig.feeder, pcm)
    await sound
    await asyncio.sleep(0.1)  # held a moment past the sound: the test's input
    pin.drive_high()
    await until(lambda: app.state.turn is Turn.SPEAKING, within=10)
    await until(lambda: app.state.turn is Turn.IDLE, within=15)
    await asyncio.sleep(0.5)
    ids = [f.response_id for f, _ in rig.frames]
    assert ids and ids[-1] is not None
    return ids[-1]


@pytest.mark.media
async def test_peer_image_frames_shown_in_step_with_the_voice(rig: Rig, app: Appliance) -> None:
    gap = np.zeros(int(0.3 * RATE), np.int16)
    burst = sine(300, 0.4, RATE, 0.5)
    pattern = np.concatenate([burst, gap, burst, gap, burst])
    # Echoed answers open with the silence captured before the sound (over half a second here):
    # anchored on the onset alone, every frame would be that late. The second adds 0.5 s more.
    first = await turn(rig, app, pattern, lead_in_s=0)
    second = await turn(rig, app, pattern, lead_in_s=0.5)

    display = app.display
    assert display is not None
    sent = sum(int(c.get("image_frames", 0)) for c in rig.peer.calls())
    shown = display.stats.shown["service"]
    dropped = {k: v for k, v in display.stats.dropped.items() if k.startswith("service.")}
    skews = [f.shown - f.due for f, _ in rig.frames if f.due is not None]
    report = [f"peer sent {sent} frames; shown {shown}, dropped {dropped or 0}"]
    report.append(f"shown-vs-due max {max(abs(s) for s in skews) * 1e3:.1f} ms")
    lags = {}
    for name, rid in (("answer 1", first), ("answer 2 (+0.5 s lead-in)", second)):
        lags[name] = lip_sync_lag(rig, rid)
        report.append(f"{name}: picture {lags[name][0] * 1e3:+.0f} ms (r={lags[name][1]:.2f})")
    print("\n" + "; ".join(report))
    assert sent > 80
    assert shown + sum(dropped.values()) == sent
    assert shown >= 0.95 * sent
    # Frame by frame, the display thread shows each frame at its due time; on a machine busy
    # beside the test a frame is sometimes shown a period late (seen: one of 110 at 60 ms, with two
    # busy loops). The picture as a whole (the lag below) must stay within lip-sync tolerance.
    late = sorted(abs(s) for s in skews)
    assert late[int(0.95 * (len(late) - 1))] <= 0.045, late[-5:]
    assert late[-1] <= 0.1, late[-5:]
    for lag, corr in lags.values():
        assert corr > 0.8
        assert -0.045 <= lag <= 0.045  # ITU-R BT.1359 detectability of sound ahead of picture
