"""The room rig: real ALSA file devices (a FIFO mic, a FIFO speaker), the room helper process
between them (echo path + a user's piper speech, in real time), the appliance in this process
with the wake word and echo cancellation, and ``rtedge peer --mode echo`` as the service."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from rtedge.app import Appliance
from rtedge.audio.pipeline import CAPTURE_PERIODS
from rtedge.settings import Settings
from rtedge.state import Connection
from tests.handsfree.speech import CACHE, speech
from tests.poll import until
from tests.support import ROOT, Peer, base_env, free_port, scaled

RATE = 48000


class Room:
    def __init__(self, tmp: Path, *, delay_ms: float = 45, gain: float = 0.5, drift_ppm: float = 0):
        self.tmp = tmp
        self.mic = tmp / "mic.fifo"
        self.spk = tmp / "spk.fifo"
        os.mkfifo(self.mic)
        os.mkfifo(self.spk)
        # held open here: alsa-lib never blocks opening either end, and neither sees EOF
        self._fds = [os.open(self.mic, os.O_RDWR), os.open(self.spk, os.O_RDWR)]
        # The mic FIFO is the card's capture ring, as deep as the one rtedge opens (a pipe
        # size is a power of two pages: the next above it): a capture thread held up longer
        # loses periods (an overrun), and what the room says before the capture starts does
        # not sit in a 64 KB pipe for the mic to lag the room by.
        ring = CAPTURE_PERIODS * RATE // 50 * 2
        fcntl.fcntl(self._fds[0], fcntl.F_SETPIPE_SZ, 1 << (ring - 1).bit_length())
        conf = tmp / "asound.conf"
        conf.write_text(
            f"""
pcm.rtmic {{ type file slave.pcm {{ type null }} file "/dev/null" infile "{self.mic}"
  format "raw" }}
pcm.rtspk {{ type file slave.pcm {{ type null }} file "{self.spk}" format "raw" }}
ctl.!default {{ type null }}
"""
        )
        os.environ["ALSA_CONFIG_PATH"] = str(conf)
        self.delay_ms, self.gain, self.drift_ppm = delay_ms, gain, drift_ppm
        self.record = tmp / "speaker-record.raw"
        self.peer = Peer(tmp, "--mode", "echo").start()
        self.proc: asyncio.subprocess.Process | None = None
        self.said: dict[int, dict[str, float]] = {}
        self._replies: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._reader: asyncio.Task[None] | None = None
        self._next_id = 0
        self._log_lock = asyncio.Lock()  # one speaker_log question and answer at a time
        self.last_gaps: list[float] = []  # speaker stream gaps seen by the last speaker_log
        self.mic_overruns = 0  # mic periods the capture did not take in time (lost)
        self.app: Appliance | None = None
        self._app_task: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()

    async def start(self, provider: str = "local", **wake: Any) -> Appliance:
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "tests.handsfree.room_helper",
            str(self.spk),
            str(self.mic),
            str(self.delay_ms),
            str(self.gain),
            str(self.drift_ppm),
            str(self.record),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            cwd=ROOT,
            env=base_env(),
        )
        self._reader = asyncio.create_task(self._read())
        settings = Settings.model_validate(
            {
                "realtime": {
                    "provider": provider,
                    "url": self.peer.calls_url
                    if provider != "live"
                    else f"{self.peer.url}/v1/live/sessions",
                    "api_key": "test-key",
                    "connect_timeout_s": 5,
                    "liveness_timeout_s": 10,
                },
                "audio": {
                    "capture_device": "rtmic",
                    "playback_device": "rtspk",
                    "echo_cancel": True,
                    "reopen_initial_s": 0.2,
                    "reopen_max_s": 0.5,
                },
                "wake": {"enabled": True, "model": "hey_jarvis", **wake},
                "ptt": {"gpio_pin": None},
                "display": {"backend": "none"},
                "health": {"listen": f"127.0.0.1:{free_port()}"},
                "reconnect": {"initial_s": 0.3, "max_s": 2, "jitter": 0.1},
            }
        )
        self.app = Appliance(settings)
        self._app_task = asyncio.create_task(self.app.run(self._stop))
        app = self.app
        await until(lambda: app.state.connection is Connection.CONNECTED, 15, "the call")
        return app

    async def _read(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        while line := await self.proc.stdout.readline():
            msg = json.loads(line)
            if "said" in msg:
                self.said[int(msg["said"])] = msg
            else:
                await self._replies.put(msg)

    async def say(self, text: str, gain: float = 0.5) -> int:
        """Start ``text`` (piper speech) into the mic now; returns its id (see ``said``)."""
        pcm = await asyncio.to_thread(speech, text)
        path = CACHE / f"room-{os.getpid()}-{self._next_id}.raw"
        await asyncio.to_thread(path.write_bytes, pcm.tobytes())
        uid = self._next_id
        self._next_id += 1
        self._send({"say": str(path), "gain": gain, "id": uid})
        return uid

    async def said_done(self, uid: int, within: float = 30) -> dict[str, float]:
        await until(lambda: uid in self.said, within, f"utterance {uid} fed")
        return self.said[uid]

    async def speaker_log(
        self, since: float, *, arrivals: bool = False
    ) -> list[tuple[float, float]]:
        """The speaker's level since ``since``: per 20 ms as the room heard it, or with
        ``arrivals`` per chunk as the device was handed it."""
        async with self._log_lock:
            self._send({"speaker_log": since})
            msg = await asyncio.wait_for(self._replies.get(), scaled(10))
        key = "arrivals" if arrivals else "speaker_log"
        self.last_gaps = [float(t) for t in msg["gaps"]]
        self.mic_overruns = int(msg["mic_overruns"])
        return [(float(t), float(r)) for t, r in msg[key]]

    def _send(self, obj: dict[str, Any]) -> None:
        assert self.proc is not None and self.proc.stdin is not None
        self.proc.stdin.write((json.dumps(obj) + "\n").encode())

    def speaker_audio(self) -> np.ndarray:
        """Everything the speaker played so far (mono 48 kHz)."""
        return np.fromfile(self.record, dtype=np.int16)

    async def call(self) -> dict[str, Any]:
        """The peer's record of the active call (off the loop: the appliance runs on it)."""
        call = await asyncio.to_thread(self.peer.active_call)
        return call or {}

    async def input_voiced_s(self) -> float:
        return float((await self.call()).get("input_voiced_s", 0.0))

    async def responses(self) -> int:
        """Replies the service began (Realtime responses, or Live replies)."""
        call = await self.call()
        if "live" in call and call["live"]:
            return int(call["live"].get("replies", 0))
        return len(call.get("responses", []))

    async def until_responses(self, more_than: int, within: float) -> None:
        async def more() -> bool:
            return await self.responses() > more_than

        await until(more, within, f"more than {more_than} replies", step=0.2)

    async def close(self) -> None:
        self._stop.set()
        if self._app_task is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._app_task, 8)
        if self.proc is not None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()
            await self.proc.wait()
        if self._reader is not None:
            self._reader.cancel()
        self.peer.kill()
        for fd in self._fds:
            with contextlib.suppress(OSError):
                os.close(fd)
        for path in CACHE.glob(f"room-{os.getpid()}-*.raw"):
            path.unlink()


def voiced(log: list[tuple[float, float]], threshold: float = 0.005) -> list[float]:
    return [t for t, r in log if r > threshold]


def median(values: list[float]) -> float:
    return float(np.median(values)) if values else float("nan")


#: Seconds after the echo path moved (an xrun at either end, the reference moved) that are not
#: steady state: AEC3 finds the echo again within a second or two of the reply playing.
SETTLE_S = 5.0


async def monitor(room: Room, app: Appliance, out: list[dict[str, Any]]) -> None:
    """Once a second, what both ends of the card and the echo canceller's reference did: the
    rows (for the figures) and when the echo path moved (``moved``: the second's start)."""
    front = app.audio.frontend
    assert front is not None and front.canceller is not None
    last: tuple[int, ...] | None = None
    while True:
        await asyncio.sleep(1.0)
        began = time.monotonic() - 1.0
        log = await room.speaker_log(began)
        counts = (
            room.mic_overruns,
            app.audio.capture.xruns,
            app.audio.playback.xruns,
            front._aligner.changes,
            front.realigns,
        )
        moved = bool(room.last_gaps) or (last is not None and counts != last)
        last = counts
        out.append(
            {
                "t": round(began, 2),
                "moved": moved,
                "speaker_voiced": len(voiced(log)),
                "underruns": len(room.last_gaps),
                "mic_overruns": room.mic_overruns,
                "aligner_offset": front._aligner.offset,
                "realigns": front.realigns,
                "read_behind": front.read_behind,
                "reference_short": front.reference_short,
                "delay_ms": front.canceller.delay_ms,
            }
        )


def steady_erle(
    app: Appliance, seconds: list[dict[str, Any]], since: float
) -> tuple[list[float], list[float]]:
    """ERLE readings since ``since`` (each over half a second of the speaker playing, while no
    turn was open: no user talking): all of them, and those of steady state (none within
    ``SETTLE_S`` after the echo path moved)."""
    front = app.audio.frontend
    assert front is not None and front.canceller is not None
    moves = [s["t"] for s in seconds if s["moved"]]
    readings = [(t, db) for t, db in list(front.canceller.erle_log) if t >= since]
    steady = [db for t, db in readings if not any(m <= t <= m + 1 + SETTLE_S for m in moves)]
    return [db for _, db in readings], steady
