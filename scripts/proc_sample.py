"""Resource samples of a live process from ``/proc``: resident memory, open fds, threads, CPU.

Shared by ``scripts/soak.py``, ``scripts/bench_reconnect.py`` and the fault suite's leak checks.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from typing import Any

CLK_TCK = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True, slots=True)
class Sample:
    rss_kb: int
    fds: int
    threads: int
    cpu_s: float

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def sample(pid: int) -> Sample:
    """RSS (kB), open file descriptors, threads and user+system CPU seconds of ``pid``."""
    rss = threads = 0
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1])
            elif line.startswith("Threads:"):
                threads = int(line.split()[1])
    fds = len(os.listdir(f"/proc/{pid}/fd"))
    with open(f"/proc/{pid}/stat") as fh:
        # Field 2 (comm) may hold spaces: split after its closing parenthesis.
        rest = fh.read().rsplit(")", 1)[1].split()
    cpu = (int(rest[11]) + int(rest[12])) / CLK_TCK  # utime, stime (fields 14, 15)
    return Sample(rss_kb=rss, fds=fds, threads=threads, cpu_s=cpu)


def theil_sen(xs: list[float], ys: list[float]) -> float:
    """Median of pairwise slopes: a growth estimate that one sample taken mid-reconnect (a few
    extra sockets, a thread winding down) cannot swing."""
    slopes = [
        (ys[j] - ys[i]) / (xs[j] - xs[i])
        for i in range(len(xs))
        for j in range(i + 1, len(xs))
        if xs[j] != xs[i]
    ]
    if not slopes:
        return 0.0
    slopes.sort()
    mid = len(slopes) // 2
    return slopes[mid] if len(slopes) % 2 else (slopes[mid - 1] + slopes[mid]) / 2
