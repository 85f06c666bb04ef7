#!/usr/bin/env python3
"""Audio benchmark: mic-to-speaker loop latency and CPU per second of two-way audio.

Both measurements talk to one ``rtedge peer --mode loopback`` (received audio is sent straight
back) on loopback, in the same run:

* rtedge: the appliance with real ALSA devices (file plugin): the mic is a FIFO written in real
  time, the speaker a FIFO drained one period per period by a "DAC" thread, as a sound card
  would. Push-to-talk is held through the HTTP path. Latency = when a pulse was written into
  the mic -> when the DAC consumed it, found by cross-correlation.
* bare: a bare aiortc client (one RTCPeerConnection, a wall-clock paced sending track, the
  remote track recorded as frames arrive), no ALSA and no playout buffer: the transport floor.

Each side runs in its own child process so its CPU time (user+sys over the steady window,
divided by the window) is its own. Results: JSON to ``bench-results/audio.json``, a markdown
table to stdout.

    python scripts/bench_audio.py [--seconds 10] [--out bench-results/audio.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

RATE = 48000
PERIOD = 960
PULSE_S = 0.15
PULSE_EVERY_S = 0.5


def pulse() -> np.ndarray:
    t = np.arange(int(PULSE_S * RATE)) / RATE
    f0, f1 = 300.0, 3000.0
    phase = 2 * np.pi * (f0 * t + (f1 - f0) * t * t / (2 * PULSE_S))
    env = np.hanning(t.size)
    return (np.sin(phase) * env * 0.4 * 32767).astype(np.int16)


def pulse_train(seconds: float) -> tuple[np.ndarray, list[int]]:
    n = int(seconds / PULSE_EVERY_S)
    out = np.zeros(int(seconds * RATE), np.int16)
    p = pulse()
    starts = []
    for i in range(n):
        s = int((i * PULSE_EVERY_S + 0.1) * RATE)
        if s + p.size > out.size:
            break
        out[s : s + p.size] = p
        starts.append(s)
    return out, starts


def locate(received: np.ndarray, start_hint: int, p: np.ndarray, window: int) -> int | None:
    """Index of pulse ``p`` in ``received`` at or after ``start_hint`` (within ``window``)."""
    seg = received[start_hint : start_hint + window + p.size].astype(np.float64)
    if seg.size < p.size:
        return None
    corr = np.correlate(seg, p.astype(np.float64), mode="valid")
    i = int(np.argmax(corr))
    norm = np.linalg.norm(seg[i : i + p.size]) * np.linalg.norm(p) + 1e-9
    if corr[i] / norm < 0.5:
        return None
    return start_hint + i


async def until(cond: Any, within: float) -> None:
    deadline = time.monotonic() + within
    while not cond():
        if time.monotonic() > deadline:
            raise SystemExit("timed out")
        await asyncio.sleep(0.05)  # noqa: ASYNC110 (polling a plain attribute)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cpu_seconds() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


# ---- rtedge side ------------------------------------------------------------------------------


DAC_CODE = r"""
import fcntl, os, signal, sys, time
fifo, out, ready = sys.argv[1:4]
fd = os.open(fifo, os.O_RDWR | os.O_NONBLOCK)
fcntl.fcntl(fd, 1031, 4096)  # F_SETPIPE_SZ: a pipe about one period deep
stop = []
signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
want = 960 * 4
t0 = time.monotonic()
with open(ready, "w") as fh:
    fh.write(repr(t0))
k = 0
with open(out, "wb") as sink:
    while not stop:
        try:
            data = os.read(fd, want)
        except BlockingIOError:
            data = b""
        sink.write(data + bytes(want - len(data)))
        k += 1
        time.sleep(max(0.0, t0 + k * 0.02 - time.monotonic()))
"""


class Dac:
    """Consumes the speaker FIFO like a sound card: one period every 20 ms, underruns padded.
    A separate process: pyalsaaudio holds the GIL in ``drop()``/``avail()``, and the file
    plugin may write to the FIFO there, so a reader thread in our process could deadlock."""

    def __init__(self, fifo: Path) -> None:
        self.out = fifo.with_suffix(".out")
        ready = fifo.with_suffix(".ready")
        self.proc = subprocess.Popen(
            [sys.executable, "-c", DAC_CODE, str(fifo), str(self.out), str(ready)]
        )
        deadline = time.monotonic() + 10
        while not ready.exists() or not ready.read_text():
            if time.monotonic() > deadline:
                raise SystemExit("DAC did not start")
            time.sleep(0.01)
        self.t0 = float(ready.read_text())

    def frames(self) -> int:
        return self.out.stat().st_size // 4 if self.out.exists() else 0

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(5)

    def left(self) -> np.ndarray:
        data = self.out.read_bytes()
        return np.frombuffer(data[: len(data) // 4 * 4], np.int16).reshape(-1, 2)[:, 0]


class Mic(threading.Thread):
    """Writes the mic FIFO in real time; records when each period went in."""

    def __init__(self, fifo: Path) -> None:
        super().__init__(daemon=True)
        self.fd = os.open(fifo, os.O_RDWR)
        self.signal: np.ndarray | None = None
        self.signal_t0: float | None = None
        self.stop = threading.Event()

    def run(self) -> None:
        pos = 0
        next_t = time.monotonic()
        while not self.stop.is_set():
            chunk = np.zeros(PERIOD, np.int16)
            sig = self.signal
            if sig is not None:
                if pos == 0:
                    self.signal_t0 = next_t
                part = sig[pos : pos + PERIOD]
                chunk[: part.size] = part
                pos += PERIOD
            os.write(self.fd, chunk.tobytes())
            next_t += PERIOD / RATE
            now = time.monotonic()
            if now - next_t > 0.1:
                next_t = now
            self.stop.wait(max(0.0, next_t - now))


async def run_rtedge(calls_url: str, seconds: float) -> dict[str, Any]:
    from rtedge.app import Appliance
    from rtedge.settings import Settings
    from rtedge.state import Connection

    work = Path(tempfile.mkdtemp(prefix="rtedge-bench-"))
    mic_fifo, spk_fifo = work / "mic.fifo", work / "spk.fifo"
    os.mkfifo(mic_fifo)
    os.mkfifo(spk_fifo)
    conf = work / "asound.conf"
    conf.write_text(
        f'pcm.rtmic {{ type file slave.pcm {{ type null }} file "/dev/null" infile "{mic_fifo}"'
        ' format "raw" }\n'
        f'pcm.rtspk {{ type file slave.pcm {{ type null }} file "{spk_fifo}" format "raw" }}\n'
        "ctl.!default { type null }\n"
    )
    os.environ["ALSA_CONFIG_PATH"] = str(conf)
    mic, dac = Mic(mic_fifo), Dac(spk_fifo)
    mic.start()
    settings = Settings.model_validate(
        {
            "realtime": {"provider": "local", "url": calls_url, "api_key": "bench"},
            "audio": {"capture_device": "rtmic", "playback_device": "rtspk", "earcons": False},
            "ptt": {"gpio_pin": None},
            "display": {"backend": "none"},
            "health": {"listen": f"127.0.0.1:{free_port()}"},
            "logging": {"level": "warning"},
        }
    )
    app = Appliance(settings)
    stop = asyncio.Event()
    task = asyncio.create_task(app.run(stop))
    try:
        await until(lambda: app.state.connection is Connection.CONNECTED or task.done(), 20)
        if task.done():
            task.result()  # raises what stopped the appliance
        app.ptt.press()  # held for the whole run: the mic goes out
        await asyncio.sleep(1.5)
        signal, starts = pulse_train(seconds)
        out_before = dac.frames()
        c0, t0 = cpu_seconds(), time.monotonic()
        mic.signal = signal
        await asyncio.sleep(seconds + 1.0)
        c1, t1 = cpu_seconds(), time.monotonic()
        app.ptt.release()
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)
        mic.stop.set()
        dac.stop()
    assert mic.signal_t0 is not None
    out = dac.left()
    latencies = []
    p = pulse()
    for s in starts:
        t_in = mic.signal_t0 + s / RATE
        hint = max(out_before, int((t_in - dac.t0) * RATE))
        j = locate(out, hint, p, int(0.45 * RATE))
        if j is not None:
            latencies.append((dac.t0 + j / RATE - t_in) * 1000)
    return {
        "latencies_ms": latencies,
        "cpu_s_per_s": (c1 - c0) / (t1 - t0),
        "pulses": len(starts),
        "drops": dict(app.state.queue_drops),
    }


# ---- bare aiortc side -------------------------------------------------------------------------


async def run_bare(calls_url: str, seconds: float) -> dict[str, Any]:
    import fractions

    import aiohttp
    import av
    from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
    from aiortc.mediastreams import MediaStreamTrack

    from rtedge.realtime.ice import use_host_addresses

    use_host_addresses(["127.0.0.1"])

    class Sender(MediaStreamTrack):
        kind = "audio"

        def __init__(self) -> None:
            super().__init__()
            self.signal: np.ndarray | None = None
            self.signal_t0: float | None = None
            self.pos = 0
            self.n = 0
            self.t0: float | None = None

        async def recv(self) -> av.AudioFrame:
            if self.t0 is None:
                self.t0 = time.monotonic()
            wait = self.t0 + self.n * PERIOD / RATE - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            chunk = np.zeros(PERIOD, np.int16)
            if self.signal is not None:
                if self.pos == 0:
                    self.signal_t0 = time.monotonic()
                part = self.signal[self.pos : self.pos + PERIOD]
                chunk[: part.size] = part
                self.pos += PERIOD
            frame = av.AudioFrame.from_ndarray(chunk.reshape(1, -1), format="s16", layout="mono")
            frame.sample_rate = RATE
            frame.pts = self.n * PERIOD
            frame.time_base = fractions.Fraction(1, RATE)
            self.n += 1
            return frame

    received: list[np.ndarray] = []
    arrivals: list[float] = []

    async def drain(track: MediaStreamTrack) -> None:
        while True:
            try:
                frame = await track.recv()
            except Exception:
                return
            arrivals.append(time.monotonic())
            received.append(frame.to_ndarray().reshape(-1, 2)[:, 0].copy())

    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    sender = Sender()
    pc.addTrack(sender)
    pc.createDataChannel("oai-events")
    tasks: list[asyncio.Task[None]] = []
    pc.on("track", lambda track: tasks.append(asyncio.ensure_future(drain(track))))
    await pc.setLocalDescription(await pc.createOffer())
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            calls_url,
            data=pc.localDescription.sdp,
            headers={"Authorization": "Bearer bench", "Content-Type": "application/sdp"},
        ) as resp,
    ):
        answer = await resp.text()
        assert resp.status in (200, 201), (resp.status, answer)
    await pc.setRemoteDescription(RTCSessionDescription(answer, "answer"))
    await until(lambda: bool(received), 20)
    await asyncio.sleep(1.5)
    signal, starts = pulse_train(seconds)
    frames_before = len(received)
    c0, t0 = cpu_seconds(), time.monotonic()
    sender.signal = signal
    await asyncio.sleep(seconds + 1.0)
    c1, t1 = cpu_seconds(), time.monotonic()
    await pc.close()
    for t in tasks:
        t.cancel()
    assert sender.signal_t0 is not None
    out = np.concatenate(received)
    latencies = []
    p = pulse()
    for s in starts:
        t_in = sender.signal_t0 + s / RATE
        first = next((i for i, a in enumerate(arrivals) if a >= t_in), len(arrivals))
        hint = max(frames_before, first) * PERIOD
        j = locate(out, hint, p, int(0.45 * RATE))
        if j is not None:
            f, r = divmod(j, PERIOD)
            latencies.append((arrivals[f] + r / RATE - t_in) * 1000)
    return {"latencies_ms": latencies, "cpu_s_per_s": (c1 - c0) / (t1 - t0), "pulses": len(starts)}


# ---- driver -----------------------------------------------------------------------------------


def child(role: str, calls_url: str, seconds: float) -> None:
    fn = run_rtedge if role == "rtedge" else run_bare
    result = asyncio.run(fn(calls_url, seconds))
    print("RESULT " + json.dumps(result))


def spawn(role: str, calls_url: str, seconds: float) -> dict[str, Any]:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.run(
        [
            sys.executable,
            __file__,
            "--role",
            role,
            "--calls-url",
            calls_url,
            "--seconds",
            str(seconds),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return dict(json.loads(line[7:]))
    raise SystemExit(f"{role} run failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}")


def summarize(lat: list[float]) -> dict[str, float]:
    if not lat:
        return {"median_ms": float("nan"), "p90_ms": float("nan"), "n": 0}
    s = sorted(lat)
    return {
        "median_ms": round(statistics.median(s), 1),
        "p90_ms": round(s[min(len(s) - 1, int(0.9 * len(s)))], 1),
        "n": len(s),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--out", type=Path, default=ROOT / "bench-results" / "audio.json")
    ap.add_argument("--role", choices=("rtedge", "bare"))
    ap.add_argument("--calls-url")
    args = ap.parse_args()
    if args.role:
        child(args.role, args.calls_url, args.seconds)
        return 0
    port = free_port()
    peer = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "rtedge",
            "peer",
            "--listen",
            f"127.0.0.1:{port}",
            "--mode",
            "loopback",
            "--log-level",
            "WARNING",
        ],
        env=dict(os.environ, PYTHONPATH=str(ROOT)),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    calls_url = f"http://127.0.0.1:{port}/v1/realtime/calls"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/_rtedge/stats", timeout=1)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise SystemExit("peer did not start") from None
                time.sleep(0.1)
        bare = spawn("bare", calls_url, args.seconds)
        ours = spawn("rtedge", calls_url, args.seconds)
    finally:
        peer.terminate()
        peer.wait(10)
    b, o = summarize(bare["latencies_ms"]), summarize(ours["latencies_ms"])
    result = {
        "when": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "seconds": args.seconds,
        "peer_mode": "loopback",
        "bare_aiortc": {**b, "cpu_s_per_s": round(bare["cpu_s_per_s"], 4)},
        "rtedge": {**o, "cpu_s_per_s": round(ours["cpu_s_per_s"], 4), "drops": ours["drops"]},
        "latency_ratio": round(o["median_ms"] / b["median_ms"], 2),
        "cpu_ratio": round(ours["cpu_s_per_s"] / bare["cpu_s_per_s"], 2),
        "raw": {"bare_ms": bare["latencies_ms"], "rtedge_ms": ours["latencies_ms"]},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print("| measurement | bare aiortc | rtedge | ratio |")
    print("| --- | --- | --- | --- |")
    print(
        f"| mic-to-speaker loop, median (p90) | {b['median_ms']} ms ({b['p90_ms']}) "
        f"| {o['median_ms']} ms ({o['p90_ms']}) | {result['latency_ratio']}x |"
    )
    print(
        f"| CPU per second of two-way audio | {bare['cpu_s_per_s']:.3f} s "
        f"| {ours['cpu_s_per_s']:.3f} s | {result['cpu_ratio']}x |"
    )
    print(f"\n(pulses found: bare {b['n']}, rtedge {o['n']}; JSON: {args.out})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
