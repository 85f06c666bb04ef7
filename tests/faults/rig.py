"""The fault suite's rig on top of ``tests.support``: the real daemon with an observation probe
(``probe/sitecustomize.py``), a health watcher that records every ``/healthz`` answer while a fault
lasts, leak checks from ``/proc`` and the probe, and the backoff schedule the recovery times are
held to."""

from __future__ import annotations

import json
import os
import re
import socket
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.support import ROOT, Daemon, Peer, scaled, wait_for

sys.path.insert(0, str(ROOT / "scripts"))
from proc_sample import sample  # noqa: E402

PROBE_DIR = Path(__file__).resolve().parent / "probe"

#: Time for one call set-up (HTTP offer/answer, ICE, DTLS, data channel) on a loaded 2-core
#: machine, on top of the backoff delays: measured 0.1-0.4 s idle; the rest is head-room for
#: the other suites running at the same time.
CONNECT_SLACK_S = 3.0
#: What the daemon's config in these tests says (tests.support.Daemon defaults).
RECONNECT = {"initial_s": 0.3, "max_s": 2.0, "multiplier": 2.0, "jitter": 0.1}
LIVENESS_S = 3.0
WATCH_INTERVAL_S = 0.25  # rtedge.realtime.supervisor.WATCH_INTERVAL_S


def backoff_window(failures: int, first: int = 0, **over: float) -> tuple[float, float]:
    """Least and most total waiting the supervisor may do for ``failures`` consecutive delays,
    starting at failure number ``first`` (0 after a healthy call)."""
    cfg = {**RECONNECT, **over}
    lo = hi = 0.0
    for n in range(first, first + failures):
        base = min(cfg["max_s"], cfg["initial_s"] * cfg["multiplier"] ** n)
        lo += base * (1 - cfg["jitter"])
        hi += base * (1 + cfg["jitter"])
    return lo, hi


def probe(path: Path, request: dict[str, Any], timeout: float = 10) -> dict[str, Any]:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect(str(path))
        s.sendall(json.dumps(request).encode() + b"\n")
        buf = b""
        while not buf.endswith(b"\n"):
            chunk = s.recv(65536)
            if not chunk:
                break
            buf += chunk
    return dict(json.loads(buf))


#: Threads of asyncio's default executor (``asyncio_0`` ...), at most DEFAULT_POOL_CAP of them.
DEFAULT_POOL = re.compile(r"^asyncio_\d+$")
DEFAULT_POOL_CAP = min(32, (os.cpu_count() or 1) + 4)


@dataclass
class Resources:
    rss_kb: int
    fds: int
    threads: int
    tasks: int | None
    task_names: dict[str, int] = field(default_factory=dict)
    thread_names: list[str] = field(default_factory=list)

    def default_pool(self) -> int:
        return sum(1 for n in self.thread_names if DEFAULT_POOL.match(n))

    def diff(self, other: Resources) -> dict[str, Any]:
        names = set(self.task_names) | set(other.task_names)
        pool = sum(1 for n in other.thread_names if DEFAULT_POOL.match(n))
        return {
            "rss_mb": round((other.rss_kb - self.rss_kb) / 1024, 2),
            "fds": other.fds - self.fds,
            # The loop's default executor starts its threads lazily, up to a fixed cap: growth
            # there is bounded by construction and is not counted; every other thread is.
            "threads": other.threads - self.threads - max(0, pool - self.default_pool()),
            "default_pool": pool,
            "tasks": None
            if self.tasks is None or other.tasks is None
            else other.tasks - self.tasks,
            "task_names": {
                n: other.task_names.get(n, 0) - self.task_names.get(n, 0)
                for n in sorted(names)
                if other.task_names.get(n, 0) != self.task_names.get(n, 0)
            },
            "thread_names": {
                n: other.thread_names.count(n) - self.thread_names.count(n)
                for n in sorted(set(self.thread_names) | set(other.thread_names))
                if other.thread_names.count(n) != self.thread_names.count(n)
            },
        }


def http_keepalive_fds(pid: int, remote_port: int | None) -> int:
    """Open TCP connections from ``pid`` to the service's HTTP port: aiohttp keeps one or two
    idle in its pool for 15 s after a request (a hangup, a connect), so their number depends on
    timing, not on leaks. They are left out of the fd count; every other fd is counted."""
    return 0 if remote_port is None else tcp_fds(pid, remote_port, column=2)


def tcp_fds(pid: int, port: int, column: int) -> int:
    """``pid``'s fds that are TCP connections (not listening sockets) whose local (``column``
    1) or remote (2) port is ``port``."""
    inodes: set[str] = set()
    for name in ("tcp", "tcp6"):
        try:
            lines = Path(f"/proc/{pid}/net/{name}").read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            cols = line.split()
            if (
                len(cols) > 9
                and cols[3] != "0A"  # TCP_LISTEN
                and int(cols[column].rsplit(":", 1)[1], 16) == port
            ):
                inodes.add(cols[9])
    n = 0
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:[") and target[8:-1] in inodes:
            n += 1
    return n


class HealthWatch:
    """Polls ``/healthz`` every 50 ms in a thread, keeping (monotonic time, status, body)."""

    def __init__(self, daemon: Daemon) -> None:
        self.daemon = daemon
        self.log: list[tuple[float, int, Any]] = []
        self._stop = threading.Event()
        self.paused = threading.Event()
        self.idle = threading.Event()  # set by the thread once paused with no request open
        self._thread = threading.Thread(target=self._run, daemon=True, name="health-watch")
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            if self.paused.is_set():
                self.idle.set()
            else:
                code, body = self.daemon.healthz()
                self.log.append((time.monotonic(), code, body))
            self._stop.wait(0.05)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(2)

    def since(self, t0: float) -> list[tuple[float, int, Any]]:
        return [e for e in list(self.log) if e[0] >= t0]

    def problems_since(self, t0: float) -> list[str]:
        out: list[str] = []
        for _, code, body in self.since(t0):
            if code == 503 and isinstance(body, dict):
                out += [p for p in body.get("problems", []) if p not in out]
        return out

    def unhealthy_since(self, t0: float) -> bool:
        return any(code != 200 for _, code, _ in self.since(t0))

    def wait_new_call(self, t0: float, old: str | None, timeout: float) -> float:
        """Seconds from ``t0`` until ``/healthz`` said 200 with a call id other than ``old``."""

        def found() -> float | None:
            for t, code, body in self.since(t0):
                if (
                    code == 200
                    and isinstance(body, dict)
                    and body.get("call_id") not in (None, old)
                ):
                    return t - t0
            return None

        result = wait_for(
            found, timeout, f"a new healthy call (problems seen: {self.problems_since(t0)})"
        )
        return float(result)


class FaultDaemon:
    """A real ``rtedge run`` with the probe, its health watcher and leak checks."""

    def __init__(self, daemon: Daemon, sock: Path) -> None:
        self.d = daemon
        self.sock = sock
        self.watch: HealthWatch | None = None

    # the Daemon's own API
    def __getattr__(self, name: str) -> Any:
        return getattr(self.d, name)

    @property
    def pid(self) -> int:
        assert self.d.proc is not None
        return self.d.proc.proc.pid

    def start(self, wait_healthy: bool = True) -> FaultDaemon:
        self.d.start(wait_healthy=wait_healthy)
        wait_for(self.sock.exists, 20, "probe socket")
        self.probe({"op": "stats"})  # finds the loop once (a gc scan) before any baseline
        self.watch = HealthWatch(self.d)
        return self

    def probe(self, request: dict[str, Any]) -> dict[str, Any]:
        return probe(self.sock, request)

    def service_port(self) -> int | None:
        text = self.d.config_path.read_text()
        m = re.search(r'^url = "https?://[^/:]+:(\d+)/', text, re.M)
        return int(m.group(1)) if m else None

    def resources(self) -> Resources:
        p = self.probe({"op": "stats"})  # first: what the probe allocates is then counted
        s = sample(self.pid)
        pooled = http_keepalive_fds(self.pid, self.service_port())
        return Resources(
            rss_kb=s.rss_kb,
            fds=s.fds - pooled,
            threads=s.threads,
            tasks=p["tasks"],
            task_names=p["task_names"],
            thread_names=p["thread_names"],
        )

    def resources_quiet(self) -> Resources:
        """``resources()`` with the health watcher paused, so no HTTP connection of ours is
        counted among the daemon's fds."""
        if self.watch is not None:
            self.watch.idle.clear()
            self.watch.paused.set()
            assert self.watch.idle.wait(scaled(10)), "the health watch did not pause"
            # ... and the daemon has closed its end of the watch's last request (on a busy
            # machine that can take longer than the request itself)
            wait_for(lambda: tcp_fds(self.pid, self.d.port, column=1) == 0, 5, "health idle")
        try:
            return self.resources()
        finally:
            if self.watch is not None:
                self.watch.paused.clear()

    def call_id(self) -> str | None:
        return self.d.status().get("call_id")

    def alive(self) -> bool:
        return self.d.proc is not None and self.d.proc.alive()

    def settle(self, up_for: float = 1.2) -> None:
        """Wait until the current call has been up ``up_for`` seconds: past ``healthy_after_s``
        (1 s in this suite: the backoff is then reset)."""
        self.d.wait_healthy(20)
        wait_for(
            lambda: (self.d.status().get("session_age_s") or 0) >= up_for,
            up_for + 10,
            "call settled",
        )

    def baseline(self) -> Resources:
        """Resources after one full drop-and-rebuild (the first one sets up lazily created
        parts: executor threads, codec state), with the call settled again."""
        self.settle()
        return self.resources_quiet()

    def assert_no_leak(
        self,
        before: Resources,
        *,
        rss_mb: float = 6.0,
        fds: int = 0,
        threads: int = 0,
        tasks: int = 0,
        within: float = 8.0,
    ) -> dict[str, Any]:
        """After the fault: the call settled, then tasks/threads/fds back to the baseline (a
        few seconds allowed for parts winding down), RSS within ``rss_mb``."""
        self.settle()
        deadline = time.monotonic() + within
        while True:
            after = self.resources_quiet()
            d = before.diff(after)
            ok = (
                d["default_pool"] <= DEFAULT_POOL_CAP
                and d["rss_mb"] <= rss_mb
                and d["fds"] <= fds
                and d["threads"] <= threads
                and (d["tasks"] is None or d["tasks"] <= tasks)
            )
            if ok or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        assert d["tasks"] is not None, "the probe saw no running event loop"
        assert ok, f"left behind after the fault: {d}"
        return d

    def stop(self) -> tuple[int, float]:
        if self.watch is not None:
            self.watch.stop()
        return self.d.stop()


def probe_env(sock: Path) -> dict[str, str]:
    import os

    return {
        "PYTHONPATH": os.pathsep.join([str(PROBE_DIR), str(ROOT)]),
        "RTEDGE_PROBE_SOCKET": str(sock),
    }


__all__ = [
    "CONNECT_SLACK_S",
    "LIVENESS_S",
    "DEFAULT_POOL_CAP",
    "PROBE_DIR",
    "RECONNECT",
    "WATCH_INTERVAL_S",
    "FaultDaemon",
    "HealthWatch",
    "Peer",
    "Resources",
    "backoff_window",
    "probe",
    "probe_env",
]
