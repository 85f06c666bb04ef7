#!/usr/bin/env python3
"""The lean protocol core, measured (issue 12), each figure beside its baseline in the same run:

- startup: ``rtedge run`` spawned -> ``READY=1`` on a real NOTIFY_SOCKET, beside
  ``python -c "import aiortc, av, numpy, aiohttp"`` (runs interleaved). Budget 1.3x.
- steady RSS during a call: the daemon taking push-to-talk turns with the local peer, sampled
  after a warm-up, beside a bare aiortc client in a call with the same peer asking for replies
  (``input_audio_buffer.commit`` + ``response.create``) at the same pace. Budget 1.15x.
- ``openai`` in the running daemon's ``sys.modules`` (asked through the fault suite's probe).
- event decode cost: ``rtedge.protocol.server.decode_server_event`` per event beside
  ``json.loads`` of the same bytes, for the five event types the peer sent most in the steady
  run's turns (events with every field, built from the ``openai`` models).

Writes ``bench-results/protocol.json`` and prints a markdown table; exits 1 when a budget fails.
Usage: scripts/bench_protocol.py [--only startup,steady,decode] [--repeats 6] [--seconds 30]
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import timeit
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from bench_proof import Rig, stats  # noqa: E402
from proc_sample import sample  # noqa: E402

from tests.faults.rig import probe, probe_env  # noqa: E402
from tests.support import NotifySocket, base_env, tone, wait_for  # noqa: E402

STACK = "import aiortc, av, numpy, aiohttp"
BUDGET_READY = 1.3
BUDGET_RSS = 1.15
TURN_EVERY_S = 3.0  # both the daemon and the bare client ask for a reply this often


# -- start-up ------------------------------------------------------------------------------


def bench_startup(rig: Rig, repeats: int) -> dict[str, Any]:
    ready: list[float] = []
    stack: list[float] = []
    for _ in range(repeats):
        t0 = time.monotonic()
        subprocess.run([sys.executable, "-c", STACK], check=True, env=base_env())
        stack.append(time.monotonic() - t0)
        sockdir = Path(tempfile.mkdtemp(prefix="rtp-"))
        notify = NotifySocket(sockdir / "notify")
        daemon = rig.daemon(env={"NOTIFY_SOCKET": str(notify.path)})
        try:
            t0 = time.monotonic()
            daemon.start(wait_healthy=False)
            wait_for(lambda n=notify: n.lines("READY=1"), 60, "READY=1", step=0.005)
            ready.append(notify.lines("READY=1")[0][0] - t0)
        finally:
            daemon.stop()
            notify.close()
            shutil.rmtree(sockdir, ignore_errors=True)
    r = statistics.median(ready) / statistics.median(stack)
    return {"to_ready_s": stats(ready), "baseline_stack_import_s": stats(stack), "ratio": r}


# -- steady RSS in a call -------------------------------------------------------------------


async def bare_main(calls_url: str, seconds: float) -> dict[str, Any]:
    """A bare aiortc client in one call: mic track (silence), drained remote audio, the event
    channel; a reply asked for every TURN_EVERY_S. Samples its own RSS after a third of the run."""
    from aiortc import RTCConfiguration, RTCPeerConnection
    from aiortc.mediastreams import AudioStreamTrack
    from bare_call import offer_and_answer

    from rtedge.rtc.ice import use_host_addresses

    use_host_addresses(["127.0.0.1"])
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    dc = pc.createDataChannel("oai-events", ordered=True)
    opened = asyncio.Event()
    dc.on("open", opened.set)
    events: collections.Counter[str] = collections.Counter()
    dc.on("message", lambda m: events.update([json.loads(m).get("type", "?")]))
    pc.addTrack(AudioStreamTrack())
    drains: list[asyncio.Task[None]] = []

    @pc.on("track")
    def _track(track: Any) -> None:
        async def drain() -> None:
            try:
                while True:
                    await track.recv()
            except Exception:
                return

        drains.append(asyncio.ensure_future(drain()))

    await offer_and_answer(pc, calls_url)
    await asyncio.wait_for(opened.wait(), 10)
    dc.send(json.dumps({"type": "session.update", "session": {"type": "realtime", "audio": {
        "input": {"turn_detection": None}}}}))  # fmt: skip
    rss: list[float] = []
    t0 = time.monotonic()
    next_turn = t0
    while time.monotonic() - t0 < seconds:
        now = time.monotonic()
        if now >= next_turn:
            dc.send(json.dumps({"type": "input_audio_buffer.commit"}))
            dc.send(json.dumps({"type": "response.create"}))
            next_turn = now + TURN_EVERY_S
        if now - t0 > seconds / 3:
            rss.append(sample(os.getpid()).rss_kb / 1024)
        await asyncio.sleep(0.5)
    await pc.close()
    return {"rss_mb": rss, "events": dict(events)}


def bench_steady(rig: Rig, seconds: float) -> dict[str, Any]:
    sockdir = Path(tempfile.mkdtemp(prefix="rtp-"))
    sock = sockdir / "probe.sock"
    daemon = rig.daemon(env=probe_env(sock)).start()
    assert daemon.proc is not None
    pid = daemon.proc.proc.pid
    rss: list[float] = []
    turns = 0
    done = threading.Event()

    def sampler(t0: float) -> None:  # every 0.5 s after the first third, turns or not
        while not done.wait(0.5):
            if time.monotonic() - t0 > seconds / 3:
                rss.append(sample(pid).rss_kb / 1024)

    try:
        wait_for(sock.exists, 10, "probe")
        t0 = time.monotonic()
        thread = threading.Thread(target=sampler, args=(t0,), daemon=True)
        thread.start()
        while time.monotonic() - t0 < seconds:
            started = time.monotonic()
            daemon.say(tone(0.6))
            daemon.wait_turn("idle", 30)
            turns += 1
            time.sleep(max(0.0, TURN_EVERY_S - (time.monotonic() - started)))
        done.set()
        thread.join()
        openai_modules = probe(sock, {"op": "modules", "prefix": "openai"})["modules"]
        call = rig.peer.active_call() or {}
        sent = collections.Counter(call.get("server_events", []))
    finally:
        daemon.stop()
        shutil.rmtree(sockdir, ignore_errors=True)
    out = subprocess.run(
        [sys.executable, __file__, "--bare", rig.peer.calls_url, "--seconds", str(seconds)],
        capture_output=True,
        text=True,
        env=base_env(),
        timeout=seconds + 120,
        check=True,
    )
    bare = json.loads(out.stdout.strip().splitlines()[-1])
    ratio = statistics.median(rss) / statistics.median(bare["rss_mb"])
    return {
        "seconds": seconds,
        "turns": turns,
        "rtedge_rss_mb": stats(rss),
        "bare_aiortc_rss_mb": stats(bare["rss_mb"]),
        "bare_events": bare["events"],
        "ratio": ratio,
        "openai_modules_in_daemon": openai_modules,
        "peer_server_events": dict(sent.most_common()),
    }


# -- decode cost --------------------------------------------------------------------------------


def bench_decode(frequent: list[str], number: int) -> dict[str, Any]:
    import json as _json

    from rtedge.protocol.server import decode_server_event
    from tests.protocol.reference import SERVER_MODELS, server_event_adapter
    from tests.protocol.reference import sample as build

    by_type = {m.model_fields["type"].annotation.__args__[0]: m for m in SERVER_MODELS}
    out: dict[str, Any] = {}
    for etype in frequent:
        event = build(by_type[etype], True)
        server_event_adapter.validate_python(event)
        data = _json.dumps(event).encode()
        loads = min(timeit.repeat(lambda d=data: _json.loads(d), number=number, repeat=5))
        ours = min(timeit.repeat(lambda d=data: decode_server_event(d), number=number, repeat=5))
        out[etype] = {
            "bytes": len(data),
            "json_loads_us": round(loads / number * 1e6, 2),
            "decode_us": round(ours / number * 1e6, 2),
            "ratio": round(ours / loads, 2),
        }
    return out


def markdown(result: dict[str, Any]) -> str:
    rows = [
        "| benchmark | rtedge | baseline (same run) | ratio | budget |",
        "|---|---|---|---|---|",
    ]
    s = result.get("startup")
    if s:
        rows.append(
            f"| start-up to READY=1 (median of {s['to_ready_s']['n']}) | "
            f'{s["to_ready_s"]["median"] * 1000:.0f} ms | `python -c "{STACK}"` '
            f"{s['baseline_stack_import_s']['median'] * 1000:.0f} ms | {s['ratio']:.2f} | "
            f"<= {BUDGET_READY} |"
        )
    st = result.get("steady")
    if st:
        rows.append(
            f"| steady RSS during a call ({st['turns']} turns in {st['seconds']:.0f} s, median) | "
            f"{st['rtedge_rss_mb']['median']:.1f} MB | bare aiortc client in a call "
            f"{st['bare_aiortc_rss_mb']['median']:.1f} MB | {st['ratio']:.2f} | <= {BUDGET_RSS} |"
        )
        mods = st["openai_modules_in_daemon"]
        rows.append(f"| `openai` modules in the running daemon | {len(mods)} | | | 0 |")
    for etype, d in (result.get("decode") or {}).items():
        rows.append(
            f"| decode `{etype}` ({d['bytes']} B) | {d['decode_us']:.1f} us | `json.loads` "
            f"{d['json_loads_us']:.1f} us | {d['ratio']:.2f} | |"
        )
    return "\n".join(rows)


DEFAULT_FREQUENT = [
    "response.output_audio_transcript.delta",
    "conversation.item.added",
    "conversation.item.done",
    "rate_limits.updated",
    "response.done",
]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--only", default="startup,steady,decode")
    ap.add_argument("--repeats", type=int, default=6)
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--number", type=int, default=20000)
    ap.add_argument("--out", type=Path, default=ROOT / "bench-results" / "protocol.json")
    ap.add_argument("--bare", metavar="CALLS_URL", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.bare:
        print(json.dumps(asyncio.run(bare_main(args.bare, args.seconds))))
        return 0
    workdir = Path(tempfile.mkdtemp(prefix="rtedge-bench-protocol-"))
    rig = Rig(workdir)
    result: dict[str, Any] = {"date": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    only = args.only.split(",")
    try:
        if "startup" in only:
            result["startup"] = bench_startup(rig, args.repeats)
        if "steady" in only:
            result["steady"] = bench_steady(rig, args.seconds)
    finally:
        rig.close()
        shutil.rmtree(workdir, ignore_errors=True)
    if "decode" in only:
        sent = (result.get("steady") or {}).get("peer_server_events") or {}
        frequent = [t for t in sent if t not in ("session.created",)][:5] or DEFAULT_FREQUENT
        result["decode_types_from"] = "peer call record" if sent else "default list"
        result["decode"] = bench_decode(frequent, args.number)
    args.out.parent.mkdir(exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(markdown(result))
    ok = True
    if "startup" in result and result["startup"]["ratio"] > BUDGET_READY:
        ok = False
    if "steady" in result:
        ok = ok and result["steady"]["ratio"] <= BUDGET_RSS
        ok = ok and not result["steady"]["openai_modules_in_daemon"]
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
