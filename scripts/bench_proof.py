#!/usr/bin/env python3
"""Reliability benchmarks, each beside a baseline measured in the same run:

- reconnect: the call dropped by the service (``drop_connection``) -> ``/healthz`` 200 on a new
  call, and the peer killed and restarted -> 200 again; beside a bare aiortc client's connect
  (offer POST -> data channel open) to the same peer.
- memory: RSS, open fds, threads and asyncio tasks of the daemon over 200 reconnect cycles
  (``drop_connection`` with a fast backoff); beside a bare aiortc client doing 200 connect/close
  cycles in one process.
- startup: ``rtedge run`` spawned -> ``READY=1`` on a real NOTIFY_SOCKET (and -> first healthy
  call); beside ``python -c 'import aiortc'`` and ``python -c pass``.

Real processes throughout: ``rtedge peer``, ``rtedge run`` with ALSA file-plugin devices.
Writes ``bench-results/proof.json`` and prints a markdown table.

Usage: scripts/bench_proof.py [--only reconnect,memory,startup] [--cycles 200] [--repeats 10]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from proc_sample import sample, theil_sen  # noqa: E402

from tests.faults.rig import probe, probe_env  # noqa: E402
from tests.support import Daemon, NotifySocket, Peer, base_env, wait_for  # noqa: E402


def stats(xs: list[float]) -> dict[str, Any]:
    xs = sorted(xs)
    if not xs:
        return {"n": 0}
    p90 = xs[min(len(xs) - 1, round(0.9 * (len(xs) - 1)))]
    return {
        "n": len(xs),
        "median": round(statistics.median(xs), 4),
        "p90": round(p90, 4),
        "min": round(xs[0], 4),
        "max": round(xs[-1], 4),
    }


# -- the bare aiortc client (runs in a child process so its RSS is its own) -----------------------


async def bare_connect(calls_url: str) -> float:
    """One bare aiortc call: offer with an audio track and the event channel, POST, answer, wait
    for the data channel to open. Returns seconds; closes the call."""
    from aiortc import RTCConfiguration, RTCPeerConnection
    from aiortc.mediastreams import AudioStreamTrack
    from bare_call import offer_and_answer

    t0 = time.perf_counter()
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    dc = pc.createDataChannel("oai-events", ordered=True)
    opened = asyncio.Event()
    dc.on("open", opened.set)
    pc.addTrack(AudioStreamTrack())

    @pc.on("track")
    def _track(track: Any) -> None:
        async def drain() -> None:
            try:
                while True:
                    await track.recv()
            except Exception:
                return

        asyncio.ensure_future(drain())  # noqa: RUF006  (ends with the track)

    await offer_and_answer(pc, calls_url)
    await asyncio.wait_for(opened.wait(), 10)
    elapsed = time.perf_counter() - t0
    await pc.close()
    return elapsed


async def bare_main(calls_url: str, cycles: int, every: int) -> dict[str, Any]:
    import os

    from rtedge.rtc.ice import use_host_addresses

    use_host_addresses(["127.0.0.1"])
    times: list[float] = []
    samples: list[dict[str, Any]] = []
    for i in range(cycles):
        times.append(await bare_connect(calls_url))
        await asyncio.sleep(0.05)
        if i % every == 0 or i == cycles - 1:
            s = sample(os.getpid()).as_dict()
            s["cycle"] = i + 1
            s["tasks"] = len(asyncio.all_tasks())
            samples.append(s)
    return {"connect_s": times, "samples": samples}


def run_bare(calls_url: str, cycles: int, every: int = 10) -> dict[str, Any]:
    out = subprocess.run(
        [
            sys.executable,
            __file__,
            "--bare",
            calls_url,
            "--cycles",
            str(cycles),
            "--every",
            str(every),
        ],
        capture_output=True,
        text=True,
        env=base_env(),
        timeout=600,
        check=True,
    )
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


# -- the daemon ---------------------------------------------------------------------------------


class Rig:
    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.peer = Peer(workdir).start()
        self.n = 0

    def daemon(
        self, config: dict[str, Any] | None = None, env: dict[str, str] | None = None
    ) -> Daemon:
        self.n += 1
        d = self.workdir / f"daemon{self.n}"
        d.mkdir()
        return Daemon(d, self.peer.calls_url, config=config, env=env)

    def close(self) -> None:
        self.peer.kill()


def healthy_call(daemon: Daemon, old: str | None, timeout: float = 30) -> float:
    t0 = time.monotonic()

    def ok() -> bool:
        code, body = daemon.healthz()
        return code == 200 and isinstance(body, dict) and body.get("call_id") not in (None, old)

    wait_for(ok, timeout, "a new healthy call", step=0.01)
    return time.monotonic() - t0


def bench_reconnect(rig: Rig, repeats: int) -> dict[str, Any]:
    initial = 0.1
    cfg = {"reconnect": {"initial_s": initial, "max_s": 1.0, "jitter": 0.0, "healthy_after_s": 1}}
    daemon = rig.daemon(config=cfg).start()
    try:
        drops: list[float] = []
        for _ in range(repeats):
            wait_for(lambda: (daemon.status().get("session_age_s") or 0) >= 1.2, 10, "settled")
            old = daemon.status()["call_id"]
            t0 = time.monotonic()
            rig.peer.fault(call="drop_connection")
            healthy_call(daemon, old)
            drops.append(time.monotonic() - t0)
        # The peer killed, restarted 2 s later. "streaming": the call is old enough (> 2 s) for
        # the daemon to have learnt that the peer streams RTP between replies. "silent": the
        # peer sent no RTP since the call began (as OpenAI between replies): only ICE consent
        # expiry can tell the call is gone.
        restart: dict[str, dict[str, list[float]]] = {}
        for kind in ("streaming", "silent"):
            seen: list[float] = []
            back: list[float] = []
            for _ in range(max(2, repeats // 4)):
                if kind == "silent":
                    healthy_call(daemon, None)
                    rig.peer.fault(call="stop_rtp")
                    time.sleep(3.0)
                else:
                    wait_for(
                        lambda: (daemon.status().get("session_age_s") or 0) >= 3.0, 15, "settled"
                    )
                old = daemon.status()["call_id"]
                t_kill = time.monotonic()
                rig.peer.kill()
                wait_for(lambda: daemon.healthz()[0] != 200, 90, "loss seen", step=0.02)
                seen.append(time.monotonic() - t_kill)
                time.sleep(2.0)
                rig.peer = Peer(rig.workdir, port=rig.peer.port).start()
                back.append(healthy_call(daemon, old))  # from the peer answering again
            restart[kind] = {"seen": seen, "back": back}
    finally:
        daemon.stop()
    bare = run_bare(rig.peer.calls_url, repeats, every=repeats)["connect_s"]
    return {
        "config": cfg["reconnect"],
        "drop_to_healthy_s": stats(drops),
        "drop_to_healthy_minus_backoff_s": stats([d - initial for d in drops]),
        "peer_killed_to_unhealthy_s": stats(restart["streaming"]["seen"]),
        "peer_restart_to_healthy_s": stats(restart["streaming"]["back"]),
        "silent_peer_killed_to_unhealthy_s": stats(restart["silent"]["seen"]),
        "silent_peer_restart_to_healthy_s": stats(restart["silent"]["back"]),
        "bare_aiortc_connect_s": stats(bare),
    }


def bench_memory(rig: Rig, cycles: int) -> dict[str, Any]:
    sockdir = Path(tempfile.mkdtemp(prefix="rtb-"))
    sock = sockdir / "probe.sock"
    cfg = {"reconnect": {"initial_s": 0.05, "max_s": 0.2, "jitter": 0.0, "healthy_after_s": 0.5}}
    daemon = rig.daemon(config=cfg, env=probe_env(sock)).start()
    assert daemon.proc is not None
    pid = daemon.proc.proc.pid
    samples: list[dict[str, Any]] = []
    t_start = time.monotonic()

    def take(cycle: int) -> None:
        p = probe(sock, {"op": "stats"})
        s = sample(pid).as_dict()
        s["cycle"] = cycle
        s["tasks"] = p["tasks"]
        s["thread_names"] = p["thread_names"]
        samples.append(s)

    try:
        wait_for(sock.exists, 10, "probe")
        take(0)
        for i in range(1, cycles + 1):
            old = daemon.status()["call_id"]
            rig.peer.fault(call="drop_connection")
            healthy_call(daemon, old)
            if i % 10 == 0:
                time.sleep(0.3)  # let the old call's parts finish closing
                take(i)
        elapsed = time.monotonic() - t_start
        status = daemon.status()
    finally:
        daemon.stop()
        shutil.rmtree(sockdir, ignore_errors=True)
    bare = run_bare(rig.peer.calls_url, cycles, every=10)["samples"]
    return {
        "config": cfg["reconnect"],
        "cycles": cycles,
        "elapsed_s": round(elapsed, 1),
        "reconnects": status.get("reconnects"),
        "rtedge": summarize_cycles(samples, cycles),
        "bare_aiortc": summarize_cycles(bare, cycles),
        "samples": {"rtedge": samples, "bare_aiortc": bare},
    }


def summarize_cycles(samples: list[dict[str, Any]], cycles: int) -> dict[str, Any]:
    """First and last values, and the growth per 100 cycles fitted after the first 10 %."""
    warm = [s for s in samples if s["cycle"] >= cycles * 0.1]
    xs = [float(s["cycle"]) for s in warm]
    out: dict[str, Any] = {}
    for key, scale in (("rss_kb", 1 / 1024), ("fds", 1.0), ("threads", 1.0), ("tasks", 1.0)):
        if any(s.get(key) is None for s in samples):
            continue
        ys = [s[key] * scale for s in warm]
        name = "rss_mb" if key == "rss_kb" else key
        out[name] = {
            "first": round(samples[0][key] * scale, 1),
            "after_warmup": round(ys[0], 1),
            "last": round(samples[-1][key] * scale, 1),
            "max": round(max(s[key] * scale for s in samples), 1),
            "per_100_cycles": round(theil_sen(xs, ys) * 100, 3),
        }
    return out


def bench_startup(rig: Rig, repeats: int) -> dict[str, Any]:
    ready: list[float] = []
    healthy: list[float] = []
    for _ in range(repeats):
        sockdir = Path(tempfile.mkdtemp(prefix="rtn-"))
        notify = NotifySocket(sockdir / "notify")
        daemon = rig.daemon(env={"NOTIFY_SOCKET": str(notify.path)})
        try:
            t0 = time.monotonic()
            daemon.start(wait_healthy=False)
            wait_for(lambda n=notify: n.lines("READY=1"), 60, "READY=1", step=0.005)
            ready.append(notify.lines("READY=1")[0][0] - t0)
            daemon.wait_healthy(30)
            healthy.append(time.monotonic() - t0)
        finally:
            daemon.stop()
            notify.close()
            shutil.rmtree(sockdir, ignore_errors=True)
    baselines: dict[str, list[float]] = {"import_aiortc": [], "python_pass": []}
    for _ in range(repeats):
        for name, code in (("import_aiortc", "import aiortc"), ("python_pass", "pass")):
            t0 = time.monotonic()
            subprocess.run([sys.executable, "-c", code], check=True, env=base_env())
            baselines[name].append(time.monotonic() - t0)
    return {
        "to_ready_s": stats(ready),
        "to_first_healthy_call_s": stats(healthy),
        "baseline_import_aiortc_s": stats(baselines["import_aiortc"]),
        "baseline_python_pass_s": stats(baselines["python_pass"]),
    }


def markdown(result: dict[str, Any]) -> str:
    rows = ["| benchmark | rtedge | baseline (same run) | ratio |", "|---|---|---|---|"]
    r = result.get("reconnect")
    if r:
        bare = r["bare_aiortc_connect_s"]["median"]
        d = r["drop_to_healthy_s"]["median"]
        rows.append(
            f"| reconnect after a dropped call (median of {r['drop_to_healthy_s']['n']}; "
            f"backoff {r['config']['initial_s']} s included) | {d * 1000:.0f} ms "
            f"(p90 {r['drop_to_healthy_s']['p90'] * 1000:.0f}) | bare aiortc connect "
            f"{bare * 1000:.0f} ms | {d / bare:.2f} |"
        )
        for tag, label in (("", "peer streaming idle RTP"), ("silent_", "silent peer")):
            seen = r[f"{tag}peer_killed_to_unhealthy_s"]
            pr = r[f"{tag}peer_restart_to_healthy_s"]
            rows.append(
                f"| {label} killed: loss seen / restarted -> healthy (median of {pr['n']}) | "
                f"{seen['median'] * 1000:.0f} ms / {pr['median'] * 1000:.0f} ms | bare aiortc "
                f"connect {bare * 1000:.0f} ms | |"
            )
    m = result.get("memory")
    if m:
        a, b = m["rtedge"], m["bare_aiortc"]
        rows.append(
            f"| RSS over {m['cycles']} reconnect cycles | {a['rss_mb']['first']} -> "
            f"{a['rss_mb']['last']} MB ({a['rss_mb']['per_100_cycles']:+.2f} MB/100 after warm-up) "
            f"| bare aiortc {b['rss_mb']['first']} -> {b['rss_mb']['last']} MB "
            f"({b['rss_mb']['per_100_cycles']:+.2f} MB/100) | |"
        )
        rows.append(
            f"| fds / threads / asyncio tasks over {m['cycles']} cycles | "
            f"{a['fds']['first']:.0f}->{a['fds']['last']:.0f} / "
            f"{a['threads']['first']:.0f}->{a['threads']['last']:.0f} / "
            f"{a['tasks']['first']:.0f}->{a['tasks']['last']:.0f} | bare "
            f"{b['fds']['first']:.0f}->{b['fds']['last']:.0f} / "
            f"{b['threads']['first']:.0f}->{b['threads']['last']:.0f} / "
            f"{b['tasks']['first']:.0f}->{b['tasks']['last']:.0f} | |"
        )
    s = result.get("startup")
    if s:
        imp = s["baseline_import_aiortc_s"]["median"]
        rows.append(
            f"| start-up to READY=1 (median of {s['to_ready_s']['n']}) | "
            f"{s['to_ready_s']['median'] * 1000:.0f} ms | `python -c 'import aiortc'` "
            f"{imp * 1000:.0f} ms (`pass` {s['baseline_python_pass_s']['median'] * 1000:.0f}) | "
            f"{s['to_ready_s']['median'] / imp:.2f} |"
        )
        rows.append(
            f"| start-up to first healthy call | "
            f"{s['to_first_healthy_call_s']['median'] * 1000:.0f} ms | | |"
        )
    return "\n".join(rows)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--only", default="reconnect,memory,startup")
    ap.add_argument("--cycles", type=int, default=200)
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--every", type=int, default=10)
    ap.add_argument("--out", type=Path, default=ROOT / "bench-results" / "proof.json")
    ap.add_argument("--bare", metavar="CALLS_URL", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.bare:
        print(json.dumps(asyncio.run(bare_main(args.bare, args.cycles, args.every))))
        return 0
    workdir = Path(tempfile.mkdtemp(prefix="rtedge-bench-"))
    rig = Rig(workdir)
    result: dict[str, Any] = {"date": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    t0 = time.monotonic()
    try:
        for name in args.only.split(","):
            t = time.monotonic()
            if name == "reconnect":
                result[name] = bench_reconnect(rig, args.repeats)
            elif name == "memory":
                result[name] = bench_memory(rig, args.cycles)
            elif name == "startup":
                result[name] = bench_startup(rig, max(3, args.repeats // 2))
            else:
                raise SystemExit(f"unknown benchmark {name!r}")
            print(f"bench_proof: {name} done in {time.monotonic() - t:.0f}s", flush=True)
    finally:
        rig.close()
    result["elapsed_s"] = round(time.monotonic() - t0, 1)
    args.out.parent.mkdir(exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(markdown(result))
    shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
