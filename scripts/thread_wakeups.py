#!/usr/bin/env python3
"""Wakeups per second of each thread of a process (voluntary context switches, from /proc).

A thread that blocks (poll, futex, sleep) and is woken again counts one voluntary context switch
in ``/proc/<pid>/task/<tid>/status``. Unlike CPU time the count hardly depends on the machine's
load, so commits can be compared while other work runs: a device thread that wakes once per
20 ms period reads ~50/s.

Standalone (no rtedge import), so it measures any process, an old checkout's included:

    python scripts/thread_wakeups.py PID [--seconds 5]

``scripts/bench_audio.py`` imports ``snapshot`` / ``per_s`` and names threads by their Python
names; standalone, a thread is named by its ``comm`` (``python3`` for every Python thread
before 3.14, so the busiest are told apart by tid).
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Mapping
from pathlib import Path

#: tid -> (name, voluntary, involuntary context switches so far)
Snapshot = dict[int, tuple[str, int, int]]


def snapshot(pid: int | str = "self", names: Mapping[int, str] | None = None) -> Snapshot:
    """Context switches so far of every thread of ``pid``; named by ``names`` (tid -> name)
    where given, else by the thread's ``comm``."""
    out: Snapshot = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            status = (task / "status").read_text()
            comm = (task / "comm").read_text().strip()
        except OSError:
            continue  # the thread ended between listing and reading
        vol = invol = 0
        for line in status.splitlines():
            if line.startswith("voluntary_ctxt_switches:"):
                vol = int(line.split()[1])
            elif line.startswith("nonvoluntary_ctxt_switches:"):
                invol = int(line.split()[1])
        tid = int(task.name)
        out[tid] = ((names or {}).get(tid, comm), vol, invol)
    return out


def per_s(
    before: Snapshot, after: Snapshot, seconds: float, *, by_tid: bool = False
) -> dict[str, float]:
    """Voluntary context switches per second between two snapshots, by thread name (threads of
    the same name summed; ThreadPoolExecutor workers as one) or by ``name/tid``. Threads that
    began inside the window count from zero; threads that ended are left out."""
    out: dict[str, float] = {}
    for tid, (name, vol, _) in after.items():
        base = before.get(tid, (name, 0, 0))[1]
        if by_tid:
            key = f"{name}/{tid}"
        else:
            key = name.split("_")[0] if name.startswith("ThreadPoolExecutor") else name
        out[key] = out.get(key, 0.0) + (vol - base) / seconds
    return {k: round(v, 1) for k, v in sorted(out.items()) if v > 0}


def main() -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("pid", type=int)
    ap.add_argument("--seconds", type=float, default=5.0)
    args = ap.parse_args()
    a, t0 = snapshot(args.pid), time.monotonic()
    time.sleep(args.seconds)
    b, t1 = snapshot(args.pid), time.monotonic()
    print(json.dumps(per_s(a, b, t1 - t0, by_tid=True), indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
