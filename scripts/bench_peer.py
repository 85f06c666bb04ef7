#!/usr/bin/env python3
"""How many concurrent calls with two-way audio ``rtedge peer`` serves on this machine before audio
falls behind real time, and its CPU per call.

The peer runs as its own process in ``loopback`` mode: every call carries audio both ways all the
time (each received frame is decoded and sent straight back, Opus-encoded). Clients are real aiortc
peer connections spread over worker processes (``--workers``) on the same machine, each sending a
continuous voiced signal and counting what comes back. Calls are added in steps; at each step the
script measures, over ``--window`` seconds:

- the peer's CPU (``/proc/<pid>/stat``), total and per call;
- frames the peer sent per call per second (real time is 50) and the share it sent late (more
  than 60 ms, three frames, behind its schedule: beyond what a receiver's jitter buffer hides);
- frames the clients received per call per second, and the share of them that were voiced.

A step passes when the peer keeps real time: sent >= 49 frames/s per call, late < 1 %, received
>= 48 frames/s and >= 95 % voiced. The capacity is the last passing step. Bounded by
``--max-seconds`` (default 240). Writes ``bench-results/peer.json`` and prints a markdown table.

Note: clients run on the same machine and use about as much CPU as the peer, so the capacity is
what one box serves to itself; a peer with remote clients serves more.
"""

from __future__ import annotations

import argparse
import asyncio
import fractions
import json
import os
import platform
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RATE = 48_000
FRAME = 960
STEPS = (1, 2, 4, 6, 8, 10, 12, 14, 16, 20, 24, 28, 32, 40, 48)
CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process (all its threads), from /proc."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


# --------------------------------------------------------------------------------------------
# Worker: a process holding some of the client calls.
# --------------------------------------------------------------------------------------------
async def worker_main(url: str) -> None:
    import aiohttp
    import av
    import numpy as np
    from aiortc import MediaStreamTrack, RTCConfiguration, RTCPeerConnection, RTCSessionDescription
    from aiortc.mediastreams import MediaStreamError

    from rtedge.rtc.ice import use_host_addresses

    use_host_addresses(["127.0.0.1"])
    t = np.arange(RATE) / RATE
    # A voiced test signal: 220 Hz with harmonics, loudness swelling 3 times a second.
    signal_1s = (
        (np.sin(2 * np.pi * 220 * t) + 0.5 * np.sin(2 * np.pi * 440 * t))
        * (0.6 + 0.4 * np.sin(2 * np.pi * 3 * t))
        * 0.25
        * 32767
    ).astype(np.int16)

    class Mic(MediaStreamTrack):
        kind = "audio"

        def __init__(self) -> None:
            super().__init__()
            self.pts = 0
            self.start: float | None = None

        async def recv(self) -> av.AudioFrame:
            if self.readyState != "live":
                raise MediaStreamError
            loop = asyncio.get_running_loop()
            if self.start is None:
                self.start = loop.time()
            wait = self.start + self.pts / RATE - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            i = self.pts % RATE
            pcm = signal_1s[i : i + FRAME]
            frame = av.AudioFrame.from_ndarray(pcm.reshape(1, -1), format="s16", layout="mono")
            frame.sample_rate = RATE
            frame.pts = self.pts
            frame.time_base = fractions.Fraction(1, RATE)
            self.pts += FRAME
            return frame

    @dataclass
    class ClientCall:
        pc: RTCPeerConnection
        rx: int = 0
        voiced: int = 0
        tasks: list[asyncio.Task[None]] = field(default_factory=list)

    calls: list[ClientCall] = []
    http = aiohttp.ClientSession()

    async def record(call: ClientCall, track: MediaStreamTrack) -> None:
        while True:
            try:
                frame = await track.recv()
            except MediaStreamError:
                return
            call.rx += 1
            if not isinstance(frame, av.AudioFrame):
                continue
            arr = frame.to_ndarray()
            if float(np.abs(arr).mean()) > 300:  # well above decoded silence
                call.voiced += 1

    async def add_call() -> None:
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        call = ClientCall(pc)
        channel = pc.createDataChannel("oai-events")
        opened = asyncio.Event()
        channel.on("message", lambda _m: opened.set())  # session.created
        pc.addTrack(Mic())
        pc.on("track", lambda tr: call.tasks.append(asyncio.ensure_future(record(call, tr))))
        await pc.setLocalDescription(await pc.createOffer())
        async with http.post(
            f"{url}/v1/realtime/calls",
            data=pc.localDescription.sdp,
            headers={"Authorization": "Bearer bench", "Content-Type": "application/sdp"},
        ) as resp:
            answer = await resp.text()
            if resp.status != 201:
                raise RuntimeError(f"call refused: {resp.status} {answer}")
        await pc.setRemoteDescription(RTCSessionDescription(answer, "answer"))
        await asyncio.wait_for(opened.wait(), 15)
        calls.append(call)

    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)

    def reply(obj: dict[str, Any]) -> None:
        sys.stdout.write(json.dumps(obj) + "\n")
        sys.stdout.flush()

    while True:
        line = await reader.readline()
        if not line:
            break
        cmd = json.loads(line)
        if cmd["op"] == "add":
            for _ in range(cmd["n"]):
                await add_call()  # one at a time: a burst of DTLS handshakes is not the test
            reply({"calls": len(calls)})
        elif cmd["op"] == "snapshot":
            reply(
                {
                    "rx": [c.rx for c in calls],
                    "voiced": [c.voiced for c in calls],
                    "cpu": cpu_seconds(os.getpid()),
                }
            )
        elif cmd["op"] == "quit":
            break
    for c in calls:
        for task in c.tasks:
            task.cancel()
        await c.pc.close()
    await http.close()
    reply({"bye": True})


# --------------------------------------------------------------------------------------------
# Orchestrator
# --------------------------------------------------------------------------------------------
class Worker:
    def __init__(self, url: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "--worker", "--url", url],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        self.calls = 0

    def ask(self, **cmd: Any) -> dict[str, Any]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps(cmd) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError("bench worker died")
        return dict(json.loads(line))

    def close(self) -> None:
        try:
            self.ask(op="quit")
            self.proc.wait(10)
        except Exception:
            self.proc.kill()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def http_json(url: str) -> Any:
    import urllib.request

    with urllib.request.urlopen(url, timeout=10) as resp:
        return json.load(resp)


def start_peer(port: int) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "rtedge.peer",
            "--listen",
            f"127.0.0.1:{port}",
            "--mode",
            "loopback",
            "--log-level",
            "WARNING",
        ],
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            http_json(f"http://127.0.0.1:{port}/_rtedge/stats")
            return proc
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("peer did not start")


def peer_counters(base: str) -> dict[str, tuple[int, int, float]]:
    return {
        c["call_id"]: (c["rtp_frames_out"], c["late_frames_out"], c["max_late_ms"])
        for c in http_json(f"{base}/_rtedge/calls")
        if c["active"]
    }


def measure(base: str, pid: int, workers: list[Worker], window: float) -> dict[str, Any]:
    out0 = peer_counters(base)
    snaps0 = [w.ask(op="snapshot") for w in workers]
    cpu0, t0 = cpu_seconds(pid), time.monotonic()
    time.sleep(window)
    cpu1, t1 = cpu_seconds(pid), time.monotonic()
    out1 = peer_counters(base)
    snaps1 = [w.ask(op="snapshot") for w in workers]
    dt = t1 - t0
    sent = [(out1[k][0] - out0[k][0]) / dt for k in out1 if k in out0]
    late = sum(out1[k][1] - out0[k][1] for k in out1 if k in out0)
    total_sent = sum(out1[k][0] - out0[k][0] for k in out1 if k in out0)
    rx: list[float] = []
    voiced = heard = 0
    client_cpu = 0.0
    for a, b in zip(snaps0, snaps1, strict=True):
        n = len(a["rx"])
        rx += [(b["rx"][i] - a["rx"][i]) / dt for i in range(n)]
        voiced += sum(b["voiced"][i] - a["voiced"][i] for i in range(n))
        heard += sum(b["rx"][i] - a["rx"][i] for i in range(n))
        client_cpu += b["cpu"] - a["cpu"]
    calls = len(sent)
    peer_cpu = (cpu1 - cpu0) / dt * 100
    return {
        "calls": calls,
        "peer_cpu_pct": round(peer_cpu, 1),
        "peer_cpu_per_call_pct": round(peer_cpu / calls, 2) if calls else 0.0,
        "clients_cpu_pct": round(client_cpu / dt * 100, 1),
        "sent_fps_min": round(min(sent), 1) if sent else 0.0,
        "late_pct": round(100 * late / total_sent, 2) if total_sent else 0.0,
        "max_late_ms": max((v[2] for v in out1.values()), default=0.0),
        "received_fps_min": round(min(rx), 1) if rx else 0.0,
        "voiced_pct": round(100 * voiced / heard, 1) if heard else 0.0,
    }


def passes(row: dict[str, Any]) -> bool:
    return bool(
        row["sent_fps_min"] >= 49
        and row["late_pct"] < 1.0
        and row["received_fps_min"] >= 48
        and row["voiced_pct"] >= 95
    )


def table(rows: list[dict[str, Any]]) -> str:
    head = (
        "| calls | peer CPU % | peer CPU per call (% of a core) | clients CPU % | "
        "min sent fps | late % | worst late ms so far | min received fps | voiced % | real time |"
    )
    lines = [head, "|" + "---|" * 10]
    for r in rows:
        lines.append(
            f"| {r['calls']} | {r['peer_cpu_pct']} | {r['peer_cpu_per_call_pct']} | "
            f"{r['clients_cpu_pct']} | {r['sent_fps_min']} | {r['late_pct']} | "
            f"{r['max_late_ms']} | {r['received_fps_min']} | {r['voiced_pct']} | "
            f"{'yes' if r['ok'] else 'NO'} |"
        )
    return "\n".join(lines)


def orchestrate(args: argparse.Namespace) -> int:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    peer = start_peer(port)
    workers = [Worker(base) for _ in range(args.workers)]
    rows: list[dict[str, Any]] = []
    started = time.monotonic()
    try:
        total = 0
        for target in STEPS:
            if target > args.max_calls:
                break
            if time.monotonic() - started > args.max_seconds - (args.window + 8):
                print(f"(stopping: --max-seconds {args.max_seconds} reached)", file=sys.stderr)
                break
            while total < target:  # spread new calls over the workers
                w = min(workers, key=lambda x: x.calls)
                w.calls = w.ask(op="add", n=1)["calls"]
                total += 1
            time.sleep(args.settle)
            row = measure(base, peer.pid, workers, args.window)
            row["ok"] = passes(row)
            rows.append(row)
            print(
                f"{row['calls']:>3} calls: peer {row['peer_cpu_pct']}% CPU, "
                f"sent>={row['sent_fps_min']} fps, late {row['late_pct']}%, "
                f"rx>={row['received_fps_min']} fps, voiced {row['voiced_pct']}% "
                f"-> {'ok' if row['ok'] else 'BEHIND'}",
                file=sys.stderr,
            )
            if not row["ok"]:
                break
    finally:
        for w in workers:
            w.close()
        peer.send_signal(signal.SIGTERM)
        try:
            peer.wait(15)
        except subprocess.TimeoutExpired:
            peer.kill()
    passing = [r for r in rows if r["ok"]]
    per_call = [r["peer_cpu_per_call_pct"] for r in passing if r["calls"] >= 2]
    result = {
        "benchmark": "rtedge peer: concurrent calls with two-way audio (loopback mode)",
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
        },
        "window_s": args.window,
        "workers": args.workers,
        "capacity_calls": passing[-1]["calls"] if passing else 0,
        "first_behind_at": next((r["calls"] for r in rows if not r["ok"]), None),
        "peer_cpu_per_call_pct": round(sum(per_call) / len(per_call), 2) if per_call else None,
        "steps": rows,
        "elapsed_s": round(time.monotonic() - started, 1),
    }
    out = ROOT / "bench-results" / "peer.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(table(rows))
    print()
    print(
        f"Capacity on this machine: **{result['capacity_calls']} concurrent calls** with two-way "
        f"audio in real time (first behind at {result['first_behind_at']}); peer CPU per call "
        f"{result['peer_cpu_per_call_pct']} % of one core. Written to {out.relative_to(ROOT)}."
    )
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, default=2, help="client processes (default 2)")
    parser.add_argument("--window", type=float, default=5.0, help="seconds measured per step")
    parser.add_argument("--settle", type=float, default=2.0, help="seconds before measuring")
    parser.add_argument("--max-calls", type=int, default=48)
    parser.add_argument("--max-seconds", type=float, default=240.0, help="overall time bound")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        asyncio.run(worker_main(args.url))
        return 0
    return orchestrate(args)


if __name__ == "__main__":
    sys.exit(main())
