#!/usr/bin/env python3
"""Accelerated soak: ``rtedge run`` against ``rtedge peer`` (both real processes) for N minutes.

The session is capped short (the peer's ``--max-session-s``, the daemon's ``rotate_after_s``), a
push-to-talk turn runs every ``--turn-every-s`` seconds, and a fault from the rotation below hits
every ``--fault-every-s`` seconds (the peer killed and restarted is one of them). Each minute the
daemon's resident memory, open fds, threads and CPU time are read from ``/proc`` (asyncio tasks
too, once ``/status`` reports ``tasks``). After the warm-up a Theil-Sen slope is fitted to each
series; the run fails when a slope is above its threshold, when RSS passes its budget, when the
daemon exits, when a turn gets no reply, or when the call does not come back after a fault.

Writes ``bench-results/soak.json`` (after every sample, so a cut-short run still leaves its data)
and ``bench-results/soak.md``. Exit 0 on pass, 1 on fail.

Usage: scripts/soak --minutes 35 [--sample-s 60] [--fault-every-s 180] [--turn-every-s 20]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from proc_sample import sample, theil_sen  # noqa: E402

from tests.faults.rig import DEFAULT_POOL, DEFAULT_POOL_CAP, probe, probe_env  # noqa: E402
from tests.support import Daemon, Peer, http, tone  # noqa: E402

#: Faults in the order the soak applies them, round robin. ``restart_peer`` kills the peer
#: process and starts a new one on the same port a few seconds later.
FAULTS: list[str] = [
    "drop_connection",
    "event_storm",
    "close_datachannel",
    "malformed_event",
    "stop_rtp",
    "http_500_then_drop",
    "unknown_event",
    "restart_peer",
    "oversized_event",
    "http_429_then_drop",
    "session_expired",
]
#: Faults after which the call must be rebuilt; the others must leave the call as it is.
DISRUPTIVE = {
    "drop_connection",
    "close_datachannel",
    "stop_rtp",
    "http_500_then_drop",
    "restart_peer",
    "http_429_then_drop",
    "session_expired",
}


def machine() -> dict[str, Any]:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith(("model name", "hardware", "model")):
                model = line.split(":", 1)[1].strip()
                if line.lower().startswith("model name"):
                    break
    except OSError:
        pass
    import os

    return {
        "arch": platform.machine(),
        "nproc": os.cpu_count(),
        "cpu": model,
        "python": platform.python_version(),
        "kernel": platform.release(),
    }


class Soak:
    def __init__(self, args: argparse.Namespace, workdir: Path) -> None:
        self.args = args
        self.workdir = workdir
        self.peer_args = ["--max-session-s", str(args.session_cap_s)]
        self.peer = Peer(workdir, *self.peer_args).start()
        (workdir / "daemon").mkdir()
        # The fault suite's probe (tests/faults/probe): asyncio tasks and thread names, which the
        # daemon does not report itself yet.
        self.sock = Path(tempfile.mkdtemp(prefix="rts-")) / "probe.sock"
        self.daemon = Daemon(
            workdir / "daemon",
            self.peer.calls_url,
            config={
                "realtime": {"rotate_after_s": args.rotate_after_s, "liveness_timeout_s": 3},
                "reconnect": {"initial_s": 0.5, "max_s": 5, "jitter": 0.2, "healthy_after_s": 5},
            },
            env=probe_env(self.sock),
        )
        self.t_start = time.monotonic()
        self.samples: list[dict[str, Any]] = []
        self.faults: list[dict[str, Any]] = []
        self.turns = {"ok": 0, "failed": 0, "skipped": 0}
        self.turn_failures: list[str] = []
        self.health_polls = {"ok": 0, "bad": 0}
        self.failures: list[str] = []

    @property
    def pid(self) -> int:
        assert self.daemon.proc is not None
        return self.daemon.proc.proc.pid

    def elapsed(self) -> float:
        return time.monotonic() - self.t_start

    # -- actions ------------------------------------------------------------------------------

    def take_sample(self) -> None:
        p = probe(self.sock, {"op": "stats"})  # first: what the probe allocates is counted
        s = sample(self.pid).as_dict()
        status = self.daemon.status()
        s["t_s"] = round(self.elapsed(), 1)
        s["tasks"] = status.get("tasks", p.get("tasks"))  # the daemon's own count once it has one
        s["thread_names"] = p.get("thread_names", [])
        pool = sum(1 for n in s["thread_names"] if DEFAULT_POOL.match(n))
        s["default_pool_threads"] = pool
        # The loop's default executor grows lazily up to a fixed cap: bounded, not a leak.
        s["threads_other"] = s["threads"] - pool
        for key in ("reconnects", "calls_started", "connection"):
            s[key] = status.get(key)
        s["events_bad"] = sum(status.get("events_bad", {}).values())
        s["queue_drops"] = sum(status.get("queue_drops", {}).values())
        try:
            s["peer_tasks"] = self.peer.stats().get("asyncio_tasks")
        except Exception:
            s["peer_tasks"] = None
        self.samples.append(s)
        print(
            f"[{s['t_s']:7.0f}s] rss {s['rss_kb'] / 1024:.1f} MB fds {s['fds']} "
            f"threads {s['threads']} (pool {pool}) tasks {s['tasks']} cpu {s['cpu_s']:.1f}s "
            f"reconnects {s['reconnects']} "
            f"turns {self.turns}",
            flush=True,
        )

    def turn(self) -> None:
        if self.daemon.healthz()[0] != 200:
            self.turns["skipped"] += 1
            return
        try:
            self.daemon.say(tone(0.8, 330))
            self.daemon.wait_turn("speaking", 15)
            self.daemon.wait_turn("idle", 30)
            self.turns["ok"] += 1
        except AssertionError as exc:
            self.turns["failed"] += 1
            self.turn_failures.append(f"{self.elapsed():.0f}s: {str(exc)[:200]}")
            http("POST", self.daemon.url + "/ptt/release")

    def fault(self, kind: str) -> None:
        status = self.daemon.status()
        before = status.get("call_id")
        t0 = time.monotonic()
        if kind == "restart_peer":
            self.peer.kill()
            time.sleep(self.args.peer_down_s)
            self.peer = Peer(self.workdir, *self.peer_args, port=self.peer.port).start()
        elif kind == "event_storm":
            self.peer.fault(call="event_storm", rate=1000, seconds=2)
        elif kind == "http_500_then_drop":
            self.peer.fault(http_status=500, count=3)
            self.peer.fault(call="drop_connection")
        elif kind == "http_429_then_drop":
            self.peer.fault(http_status=429, count=1, retry_after=2)
            self.peer.fault(call="drop_connection")
        else:
            self.peer.fault(call=kind)
        record: dict[str, Any] = {"t_s": round(self.elapsed(), 1), "fault": kind}
        deadline = t0 + self.args.recovery_limit_s
        saw_down = False
        recovered = None
        # Disruptive: time until healthz is 200 again on a new call. The others must keep the
        # call: 0 when healthz stayed 200 through a 3 s watch, else the time until it was again.
        last_down = None
        while time.monotonic() < deadline:
            code, body = self.daemon.healthz()
            now = time.monotonic()
            if code != 200:
                saw_down = True
                last_down = now
            elif kind in DISRUPTIVE:
                if isinstance(body, dict) and body.get("call_id") not in (None, before):
                    recovered = now - t0
                    break
            elif now - t0 > 3:
                recovered = 0.0 if last_down is None else last_down - t0
                break
            time.sleep(0.05)
        record["recovery_s"] = None if recovered is None else round(recovered, 2)
        record["healthz_reported"] = saw_down
        after = self.daemon.status()
        record["call_kept"] = after.get("call_id") == before
        if recovered is None:
            self.failures.append(f"{kind} at {record['t_s']}s: no recovery in time")
        elif kind not in DISRUPTIVE and not record["call_kept"]:
            self.failures.append(f"{kind} at {record['t_s']}s: call was lost")
        self.faults.append(record)
        print(f"[{record['t_s']:7.0f}s] fault {kind}: {record}", flush=True)

    # -- the run ------------------------------------------------------------------------------

    def run(self) -> bool:
        self.daemon.start(wait_healthy=True)
        self.t_start = time.monotonic()
        end = self.t_start + self.args.minutes * 60
        next_sample = self.t_start
        next_turn = self.t_start + 5
        next_fault = self.t_start + self.args.fault_every_s
        n_fault = 0
        try:
            while time.monotonic() < end:
                if self.daemon.proc is None or not self.daemon.proc.alive():
                    self.failures.append(f"daemon exited at {self.elapsed():.0f}s")
                    break
                now = time.monotonic()
                if now >= next_sample:
                    self.take_sample()
                    self.write(final=False)
                    next_sample += self.args.sample_s
                elif now >= next_fault:
                    self.fault(FAULTS[n_fault % len(FAULTS)])
                    n_fault += 1
                    next_fault += self.args.fault_every_s
                elif now >= next_turn:
                    self.turn()
                    next_turn = time.monotonic() + self.args.turn_every_s
                else:
                    self.health_polls["ok" if self.daemon.healthz()[0] == 200 else "bad"] += 1
                    time.sleep(1.0)
            if self.daemon.proc is not None and self.daemon.proc.alive():
                self.take_sample()
        finally:
            code, secs = self.daemon.stop() if self.daemon.proc else (None, None)
            self.peer.kill()
        self.exit = {"code": code, "stop_s": None if secs is None else round(secs, 2)}
        if code != 0:
            self.failures.append(f"daemon exit code {code} on SIGTERM")
        self.analyse()
        self.write(final=True)
        return not self.failures

    def analyse(self) -> None:
        a = self.args
        warm = max(a.warmup_s, 0.2 * a.minutes * 60)
        steady = [s for s in self.samples if s["t_s"] >= warm]
        self.fits: dict[str, Any] = {"warmup_s": warm, "samples_fitted": len(steady)}
        limits = {
            "rss_mb_per_h": a.max_rss_mb_per_h,
            "fds_per_h": a.max_fds_per_h,
            "threads_per_h": a.max_threads_per_h,
            "tasks_per_h": a.max_tasks_per_h,
        }
        if len(steady) < 3:
            self.failures.append(f"only {len(steady)} samples after the warm-up: run longer")
            return
        xs = [s["t_s"] / 3600 for s in steady]
        series = {
            "rss_mb_per_h": [s["rss_kb"] / 1024 for s in steady],
            "fds_per_h": [float(s["fds"]) for s in steady],
            "threads_per_h": [float(s.get("threads_other", s["threads"])) for s in steady],
        }
        pool_max = max((s.get("default_pool_threads", 0) for s in self.samples), default=0)
        self.fits["default_pool_max"] = pool_max
        if pool_max > DEFAULT_POOL_CAP:
            self.failures.append(f"{pool_max} default-executor threads, cap {DEFAULT_POOL_CAP}")
        if all(s.get("tasks") is not None for s in steady):
            series["tasks_per_h"] = [float(s["tasks"]) for s in steady]
        for name, ys in series.items():
            slope = theil_sen(xs, ys)
            self.fits[name] = round(slope, 3)
            if slope > limits[name]:
                self.failures.append(f"{name} slope {slope:.2f} above {limits[name]}")
        rss_max = max(s["rss_kb"] for s in self.samples) / 1024
        self.fits["rss_max_mb"] = round(rss_max, 1)
        if rss_max > a.rss_budget_mb:
            self.failures.append(f"RSS {rss_max:.1f} MB above the {a.rss_budget_mb} MB budget")
        if self.turns["failed"] > a.max_failed_turns:
            self.failures.append(f"{self.turns['failed']} turns failed: {self.turn_failures}")

    def write(self, final: bool) -> None:
        out = ROOT / "bench-results"
        out.mkdir(exist_ok=True)
        recov = [f["recovery_s"] for f in self.faults if f["fault"] in DISRUPTIVE]
        recov = [r for r in recov if r is not None]
        data = {
            "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "machine": machine(),
            "complete": final,
            "args": vars(self.args),
            "elapsed_s": round(self.elapsed(), 1),
            "passed": final and not self.failures,
            "failures": self.failures,
            "turns": self.turns,
            "turn_failures": self.turn_failures,
            "health_polls": self.health_polls,
            "faults": self.faults,
            "recovery_s_max": max(recov) if recov else None,
            "fits": getattr(self, "fits", None),
            "exit": getattr(self, "exit", None),
            "samples": self.samples,
        }
        (out / f"{self.args.name}.json").write_text(json.dumps(data, indent=1) + "\n")
        if final:
            (out / f"{self.args.name}.md").write_text(markdown(data) + "\n")


def markdown(d: dict[str, Any]) -> str:
    m = d["machine"]
    s = d["samples"]
    fits = d["fits"] or {}
    first, last = (s[0], s[-1]) if s else ({}, {})
    by_kind: dict[str, list[float]] = {}
    for f in d["faults"]:
        if f["recovery_s"] is not None:
            by_kind.setdefault(f["fault"], []).append(f["recovery_s"])
    lines = [
        f"## Soak: {d['elapsed_s'] / 60:.0f} minutes, {'PASS' if d['passed'] else 'FAIL'}",
        "",
        f"{d['date']} on {m['arch']}, {m['nproc']} cores, {m['cpu']} (Python {m['python']}).",
        f"Session cap {d['args']['session_cap_s']:.0f} s (rotation at "
        f"{d['args']['rotate_after_s']:.0f} s), a turn every {d['args']['turn_every_s']:.0f} s, "
        f"a fault every {d['args']['fault_every_s']:.0f} s.",
        "",
        "| measure | start | end | slope after warm-up | limit |",
        "|---|---|---|---|---|",
    ]
    a = d["args"]
    if s:
        lines += [
            f"| RSS (MB) | {first['rss_kb'] / 1024:.1f} | {last['rss_kb'] / 1024:.1f} | "
            f"{fits.get('rss_mb_per_h', 'n/a')} MB/h | {a['max_rss_mb_per_h']} MB/h, "
            f"max {fits.get('rss_max_mb', 'n/a')} of {a['rss_budget_mb']} MB |",
            f"| open fds | {first['fds']} | {last['fds']} | {fits.get('fds_per_h', 'n/a')}/h | "
            f"{a['max_fds_per_h']}/h |",
            f"| threads (outside the default executor) | {first.get('threads_other', '')} | "
            f"{last.get('threads_other', '')} | {fits.get('threads_per_h', 'n/a')}/h | "
            f"{a['max_threads_per_h']}/h |",
            f"| threads of the default executor (bounded) | {first.get('default_pool_threads')} | "
            f"{last.get('default_pool_threads')} | max {fits.get('default_pool_max')} | "
            f"cap {DEFAULT_POOL_CAP} |",
            f"| asyncio tasks | {first.get('tasks') or 'n/a'} | {last.get('tasks') or 'n/a'} | "
            f"{fits.get('tasks_per_h', 'n/a (not reported by the daemon)')} | "
            f"{a['max_tasks_per_h']}/h |",
            f"| CPU (s) | {first['cpu_s']:.1f} | {last['cpu_s']:.1f} | "
            f"{(last['cpu_s'] - first['cpu_s']) / max(1.0, last['t_s'] - first['t_s']) * 100:.1f}"
            " % of a core on average | |",
            f"| reconnects | {first['reconnects']} | {last['reconnects']} | | |",
            f"| calls started | {first['calls_started']} | {last['calls_started']} | | |",
        ]
    t = d["turns"]
    hp = d["health_polls"]
    lines += [
        "",
        f"Turns: {t['ok']} answered, {t['failed']} failed, {t['skipped']} skipped (call down). "
        f"Health polls: {hp['ok']} healthy, {hp['bad']} not.",
        "",
        "| fault | times | recovery (s) min / max |",
        "|---|---|---|",
    ]
    for kind, vals in sorted(by_kind.items()):
        tag = "" if kind in DISRUPTIVE else " (call kept)"
        lines.append(f"| {kind}{tag} | {len(vals)} | {min(vals):.2f} / {max(vals):.2f} |")
    if d["failures"]:
        lines += ["", "Failures:", *[f"- {f}" for f in d["failures"]]]
    return "\n".join(lines)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--minutes", type=float, default=35.0)
    p.add_argument("--sample-s", type=float, default=60.0)
    p.add_argument("--turn-every-s", type=float, default=20.0)
    p.add_argument("--fault-every-s", type=float, default=150.0)
    p.add_argument("--session-cap-s", type=float, default=150.0, help="peer --max-session-s")
    p.add_argument("--rotate-after-s", type=float, default=100.0, help="daemon rotate_after_s")
    p.add_argument("--peer-down-s", type=float, default=5.0)
    p.add_argument("--recovery-limit-s", type=float, default=30.0)
    p.add_argument("--warmup-s", type=float, default=300.0)
    p.add_argument("--max-rss-mb-per-h", type=float, default=8.0)
    p.add_argument("--max-fds-per-h", type=float, default=2.0)
    p.add_argument("--max-threads-per-h", type=float, default=2.0)
    p.add_argument("--max-tasks-per-h", type=float, default=5.0)
    p.add_argument("--rss-budget-mb", type=float, default=150.0)
    p.add_argument("--max-failed-turns", type=int, default=0)
    p.add_argument("--keep", action="store_true", help="keep the work directory (logs)")
    p.add_argument("--name", default="soak", help="bench-results/NAME.json and NAME.md")
    args = p.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="rtedge-soak-"))
    print(f"soak: {args.minutes} min, work directory {workdir}", flush=True)
    soak = Soak(args, workdir)
    ok = soak.run()
    print((ROOT / "bench-results" / f"{args.name}.md").read_text(), flush=True)
    shutil.rmtree(soak.sock.parent, ignore_errors=True)
    if ok and not args.keep:
        shutil.rmtree(workdir, ignore_errors=True)
    else:
        print(f"logs kept in {workdir}", flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
