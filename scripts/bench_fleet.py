#!/usr/bin/env python3
"""What watching a device as part of a fleet costs the device, measured with the real programs.

- ``/metrics``: the daemon's CPU per scrape, beside ``/healthz`` (the baseline: the cheapest
  request the same server answers), and the size of one scrape.
- Prometheus in agent mode (the pull-free path, ``config/prometheus/device-agent.yml``): resident
  memory and CPU while it scrapes the daemon and remote-writes to a central Prometheus.
- ``systemd-journal-upload --follow`` (the log path): resident memory and CPU while it ships the
  journal to a ``systemd-journal-remote`` (journald run by hand in a mount namespace, as in the
  tests; needs root).

Writes bench-results/fleet.json and prints a markdown table.
Usage: scripts/bench_fleet.py [--scrapes 300] [--agent-seconds 90] [--agent-interval 5]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import subprocess
import sys
import tempfile
import textwrap
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from proc_sample import sample  # noqa: E402

from tests.fleet.rig import CONF, Prometheus, substitute  # noqa: E402
from tests.support import Daemon, Peer, free_port, wait_for  # noqa: E402


def rss_split_mb(pid: int) -> dict[str, float]:
    """Anonymous (heap, stacks) and file-backed (the mapped binary) parts of the RSS: the kernel
    can drop file pages under pressure and read them back, anonymous ones it cannot."""
    out: dict[str, float] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("RssAnon", "RssFile"):
            out[key.lower().replace("rss", "rss_") + "_mb"] = round(int(value.split()[0]) / 1024, 1)
    return out


def request_cpu_ms(daemon: Daemon, path: str, n: int) -> tuple[float, int]:
    """The daemon's CPU milliseconds per request of ``path`` (n in a row), and the body size."""
    assert daemon.proc is not None
    pid = daemon.proc.proc.pid
    size = 0
    before = sample(pid).cpu_s
    for _ in range(n):
        with urllib.request.urlopen(daemon.url + path, timeout=5) as resp:
            size = len(resp.read())
    return (sample(pid).cpu_s - before) * 1000 / n, size


def bench_scrape(daemon: Daemon, n: int) -> dict[str, Any]:
    # Interleaved rounds, so a burst of load elsewhere falls on both sides alike.
    metrics = healthz = 0.0
    size = 0
    rounds = 5
    for _ in range(rounds):
        m, size = request_cpu_ms(daemon, "/metrics", n // rounds)
        h, _ = request_cpu_ms(daemon, "/healthz", n // rounds)
        metrics += m / rounds
        healthz += h / rounds
    return {
        "metrics_cpu_ms_per_scrape": round(metrics, 3),
        "healthz_cpu_ms_per_request": round(healthz, 3),
        "ratio": round(metrics / healthz, 2) if healthz else None,
        "metrics_bytes": size,
        "scrapes": n,
    }


def bench_agent(
    workdir: Path, daemon: Daemon, seconds: float, interval: int, go_env: dict[str, str]
) -> dict[str, Any]:
    central = Prometheus(workdir / "central", "scrape_configs: []\n", receiver=True)
    agent: Prometheus | None = None
    try:
        config = substitute(
            (CONF / "device-agent.yml").read_text(),
            {
                "scrape_interval: 30s": f"scrape_interval: {interval}s",
                "device_id: DEVICE_ID": "device_id: bench",
                "site: SITE": "site: bench",
                '"127.0.0.1:8787"': f'"127.0.0.1:{daemon.port}"',
                "https://prometheus.example.net/api/v1/write": f"{central.url}/api/v1/write",
            },
        )
        agent = Prometheus(workdir / "agent", config, agent=True, env=go_env)
        wait_for(lambda: central.query('rtedge_call_up{job="rtedge-push"}'), 60, "samples pushed")
        pid = agent.proc.proc.pid
        start, t0 = sample(pid), time.monotonic()
        peak = start.rss_kb
        while time.monotonic() - t0 < seconds:
            time.sleep(1)
            peak = max(peak, sample(pid).rss_kb)
        end = sample(pid)
        split = rss_split_mb(pid)
        elapsed = time.monotonic() - t0
        series = len(central.query('{job="rtedge-push"}'))
        return {
            "go_env": " ".join(f"{k}={v}" for k, v in go_env.items()) or "(defaults)",
            "scrape_interval_s": interval,
            "seconds": round(elapsed),
            "rss_mb": round(end.rss_kb / 1024, 1),
            "rss_peak_mb": round(peak / 1024, 1),
            **split,
            "cpu_percent_of_one_core": round(100 * (end.cpu_s - start.cpu_s) / elapsed, 2),
            "series_pushed": series,
        }
    finally:
        if agent is not None:
            agent.stop()
        central.stop()


TUNED = {"GOMEMLIMIT": "24MiB", "GOGC": "50"}

UPLOAD_SCRIPT = textwrap.dedent(
    """
    set -eu
    mount -t tmpfs tmpfs /run
    mkdir -p /run/systemd/journal
    /lib/systemd/systemd-journald >/dev/null 2>&1 & jpid=$!
    until [ -S /run/systemd/journal/socket ]; do sleep 0.05; done
    /lib/systemd/systemd-journal-remote --listen-http="127.0.0.1:$PORT" --output="$OUT/" \
        >/dev/null 2>&1 & rpid=$!
    sleep 0.5
    /lib/systemd/systemd-journal-upload --url="http://127.0.0.1:$PORT" \
        --directory=/run/log/journal >/dev/null 2>&1 & upid=$!
    echo $upid > "$OUT/upload.pid"
    i=0
    while [ $i -lt $((SECONDS_TOTAL * 10)) ]; do
      echo "rtedge bench line $i" | systemd-cat -t rtedge; i=$((i+1)); sleep 0.1
    done
    kill $upid $rpid $jpid
    """
)


def bench_upload(workdir: Path, seconds: int) -> dict[str, Any]:
    if os.geteuid() != 0:
        return {"skipped": "needs root for journald's own /run (mount namespace)"}
    out = workdir / "remote"
    out.mkdir()
    env = {**os.environ, "OUT": str(out), "PORT": str(free_port()), "SECONDS_TOTAL": str(seconds)}
    proc = subprocess.Popen(
        ["unshare", "--mount", "--propagation", "private", "sh", "-c", UPLOAD_SCRIPT], env=env
    )
    pid = int(
        wait_for(
            lambda: (out / "upload.pid").exists() and (out / "upload.pid").read_text().strip(),
            30,
            "upload pid",
        )
    )
    time.sleep(2)
    start, t0 = sample(pid), time.monotonic()
    time.sleep(seconds - 4)
    end, elapsed = sample(pid), time.monotonic() - t0
    split = rss_split_mb(pid)
    proc.wait(timeout=60)
    return {
        "lines_per_second": 10,
        "rss_mb": round(end.rss_kb / 1024, 1),
        **split,
        "cpu_percent_of_one_core": round(100 * (end.cpu_s - start.cpu_s) / elapsed, 2),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--scrapes", type=int, default=300)
    ap.add_argument("--agent-seconds", type=float, default=90)
    ap.add_argument("--agent-interval", type=int, default=5)
    ap.add_argument("--upload-seconds", type=int, default=20)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="rtedge-bench-fleet-") as tmp:
        workdir = Path(tmp)
        (workdir / "peer").mkdir()
        (workdir / "daemon").mkdir()
        peer = Peer(workdir / "peer").start()
        daemon = Daemon(workdir / "daemon", peer.calls_url).start()
        try:
            assert daemon.proc is not None
            result: dict[str, Any] = {
                "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                "machine": f"{platform.machine()} {os.cpu_count()} cores",
                "loadavg_start": Path("/proc/loadavg").read_text().split()[:3],
                "daemon_rss_mb": round(sample(daemon.proc.proc.pid).rss_kb / 1024, 1),
                "daemon": rss_split_mb(daemon.proc.proc.pid),
                "scrape": bench_scrape(daemon, args.scrapes),
                "agent": bench_agent(
                    workdir / "agent-default", daemon, args.agent_seconds, args.agent_interval, {}
                ),
                # What the README recommends on a Pi: a soft memory limit for Go's collector.
                "agent_tuned": bench_agent(
                    workdir / "agent-tuned",
                    daemon,
                    args.agent_seconds,
                    args.agent_interval,
                    TUNED,
                ),
                "journal_upload": bench_upload(workdir, args.upload_seconds),
            }
        finally:
            daemon.stop()
            peer.stop()
    out = ROOT / "bench-results" / "fleet.json"
    out.write_text(json.dumps(result, indent=1) + "\n")
    s, u = result["scrape"], result["journal_upload"]
    print(f"fleet costs on the device ({result['machine']}, {result['date']}):")
    print("| piece | memory | CPU |")
    print("|---|---|---|")
    print(
        f"| /metrics scrape | {s['metrics_bytes']} B per scrape | {s['metrics_cpu_ms_per_scrape']}"
        f" ms (vs /healthz {s['healthz_cpu_ms_per_request']} ms, {s['ratio']}x) |"
    )
    for a in (result["agent"], result["agent_tuned"]):
        print(
            f"| Prometheus agent, {a['go_env']} ({a['scrape_interval_s']} s scrapes) |"
            f" {a['rss_mb']} MB RSS ({a['rss_anon_mb']} anonymous) |"
            f" {a['cpu_percent_of_one_core']} % of a core |"
        )
    if "skipped" not in u:
        print(
            f"| systemd-journal-upload --follow | {u['rss_mb']} MB RSS"
            f" ({u['rss_anon_mb']} anonymous) |"
            f" {u['cpu_percent_of_one_core']} % of a core |"
        )
    print(f"(daemon itself: {result['daemon_rss_mb']} MB RSS) -> {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
