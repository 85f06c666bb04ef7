"""The kiosk screen's end-to-end rig: the appliance in this process (so a test can see each
State change and each caption drawn), ``rtedge peer`` as a real process answering with a known
sentence, real ALSA file devices, mock GPIO pins, and the folder screenshots are written to."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from gpiozero import Device
from gpiozero.pins.mock import MockFactory

from rtedge.app import Appliance
from rtedge.settings import Settings
from rtedge.state import Connection
from tests.audio.alsa_rig import AlsaRig, MicFeeder
from tests.poll import until
from tests.support import ROOT, Peer, daemon_config, peer_args

RATE = 48000
PIN = 17
#: What the peer says (its session instructions ``Say "..."``): words to look for.
REPLY = "Welcome to the kiosk, how can I help you today?"


def artifacts_dir(name: str) -> Path:
    """Where a test run leaves screenshots for a person to look at: ``tests/artifacts/<name>``
    (ignored by git), or under ``$RTEDGE_TEST_ARTIFACTS`` when set."""
    base = Path(os.environ.get("RTEDGE_TEST_ARTIFACTS") or ROOT / "tests" / "artifacts")
    out = base / name
    out.mkdir(parents=True, exist_ok=True)
    return out


@dataclass
class KioskRig:
    tmp: Path
    alsa: AlsaRig
    feeder: MicFeeder
    peer: Peer
    pins: MockFactory
    profile: str = "openai"

    def speaker(self) -> np.ndarray:
        """Left channel of everything played, float; sample n was played at clock n / RATE."""
        return self.alsa.speaker_samples().reshape(-1, 2)[:, 0].astype(np.float32) / 32768

    def settings(self, port: int, **sections: dict[str, Any]) -> Settings:
        cfg: dict[str, dict[str, Any]] = {
            "realtime": {
                "provider": "local",
                "url": self.peer.calls_url,
                "api_key": "test-key",
                "instructions": f'Say "{REPLY}"',
                "connect_timeout_s": 5,
                "liveness_timeout_s": 5,
            },
            "audio": {"capture_device": "rtmic", "playback_device": "rtspk", "earcons": False},
            "ptt": {"gpio_pin": PIN},
            "health": {"listen": f"127.0.0.1:{port}"},
            "reconnect": {"initial_s": 0.3, "max_s": 2, "jitter": 0.1},
        }
        for name, values in daemon_config(self.profile, sections).items():
            cfg.setdefault(name, {}).update(values)
        return Settings.model_validate(cfg)


@contextlib.asynccontextmanager
async def kiosk_rig(tmp: Path, profile: str = "openai") -> AsyncIterator[KioskRig]:
    """``profile``: the service shape the peer plays (``minimal``: none of the optional events)."""
    alsa = AlsaRig(tmp)
    alsa.write_conf()
    feeder, _ = alsa.make_mic()
    feeder.start()
    alsa.make_speaker()
    peer = Peer(tmp, *peer_args(profile)).start()  # assistant mode: a reply and its transcript
    old = Device.pin_factory
    pins = MockFactory()
    Device.pin_factory = pins
    try:
        yield KioskRig(tmp, alsa, feeder, peer, pins, profile)
    finally:
        Device.pin_factory = old
        feeder.stop()
        peer.kill()


@dataclass
class Running:
    app: Appliance
    task: asyncio.Task[None]
    stop_event: asyncio.Event

    async def stop(self) -> None:
        """As on SIGTERM."""
        self.stop_event.set()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.task, 10)


async def start(app: Appliance) -> Running:
    """Run ``app`` until its ``stop()``; returns once it is in a call."""
    stop = asyncio.Event()
    task = asyncio.create_task(app.run(stop))
    handle = Running(app, task, stop)
    try:
        await until(lambda: task.done() or app.state.connection is Connection.CONNECTED, within=15)
        if task.done():
            task.result()
    except BaseException:
        await handle.stop()
        raise
    return handle


@contextlib.asynccontextmanager
async def running(settings: Settings, app: Appliance | None = None) -> AsyncIterator[Appliance]:
    """The appliance running until the block ends (then stopped as on SIGTERM)."""
    handle = await start(app or Appliance(settings))
    try:
        yield handle.app
    finally:
        await handle.stop()


def reply_span(speaker: np.ndarray, after: int, threshold: float = 0.005) -> tuple[int, int, int]:
    """(first, last, voiced) 10 ms blocks of sound at the speaker from sample ``after`` on:
    where the reply's audio starts and ends (in blocks from ``after``) and how many blocks of it
    are voice."""
    block = RATE // 100
    seg = speaker[after:]
    blocks = seg[: seg.size // block * block].reshape(-1, block)
    loud = np.sqrt((blocks**2).mean(axis=1)) > threshold
    idx = np.nonzero(loud)[0]
    if idx.size == 0:
        return -1, -1, 0
    return int(idx[0]), int(idx[-1]), int(loud.sum())


def voiced_blocks_until(speaker: np.ndarray, start: int, end: int, threshold: float = 0.005) -> int:
    """10 ms blocks of voice at the speaker between samples ``start`` and ``end``."""
    block = RATE // 100
    seg = speaker[start:end]
    blocks = seg[: seg.size // block * block].reshape(-1, block)
    return int((np.sqrt((blocks**2).mean(axis=1)) > threshold).sum())
