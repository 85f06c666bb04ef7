#!/usr/bin/env python3
"""Gathers the JSON every benchmark wrote under ``bench-results/`` into ``bench.json`` and a
markdown table ``bench.md`` (machine and date on top), each figure beside its same-run baseline.

Only results written by this run count: ``--since EPOCH`` skips older files (``scripts/bench``
passes its start time), so a stale file never passes for a fresh figure. A benchmark whose JSON
has an unexpected shape still appears, as a row saying so.

Usage: scripts/bench_report.py [--since EPOCH] [--dir bench-results]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
Row = tuple[str, str, str, str, str]  # benchmark, rtedge, baseline, ratio, budget


def machine() -> dict[str, Any]:
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key = line.split(":", 1)[0].strip().lower()
            if key in ("model name", "hardware", "model") and ":" in line:
                cpu = line.split(":", 1)[1].strip()
                if key == "model name":
                    break
    except OSError:
        pass
    return {
        "loadavg_at_report": " ".join(Path("/proc/loadavg").read_text().split()[:3]),
        "arch": platform.machine(),
        "nproc": os.cpu_count(),
        "cpu": cpu or "unknown",
        "kernel": platform.release(),
        "python": platform.python_version(),
    }


def ms(x: float) -> str:
    return f"{x:.1f} ms" if x < 10 else f"{x:.0f} ms"


def rows_audio(d: dict[str, Any]) -> list[Row]:
    r, b = d["rtedge"], d["bare"]
    lat = r["median_ms"] / b["median_ms"]
    cpu = r["cpu_s_per_s"] / b["cpu_s_per_s"]
    rows: list[Row] = [
        (
            "mic-to-speaker loop latency (median)",
            ms(r["median_ms"]),
            f"bare aiortc loopback {ms(b['median_ms'])}",
            f"{lat:.2f}",
            "<= 1.1x and < 120 ms",
        ),
        (
            "CPU per second of two-way audio",
            f"{r['cpu_s_per_s'] * 1000:.0f} ms/s",
            f"bare aiortc client {b['cpu_s_per_s'] * 1000:.0f} ms/s",
            f"{cpu:.2f}",
            "<= 1.0x",
        ),
    ]
    a = d.get("bare_alsa")
    if a is not None:
        rows.append(
            (
                "the same, beside bare aiortc on the same ALSA devices",
                f"{ms(r['median_ms'])}, {r['cpu_s_per_s'] * 1000:.0f} ms/s",
                f"{ms(a['median_ms'])}, {a['cpu_s_per_s'] * 1000:.0f} ms/s",
                f"{r['median_ms'] / a['median_ms']:.2f}, {r['cpu_s_per_s'] / a['cpu_s_per_s']:.2f}",
                "",
            )
        )
    return rows


def rows_display(d: dict[str, Any]) -> list[Row]:
    c = d["costs"]
    bare = c["bare_decode"]["median_ms"]
    out: list[Row] = []
    for key in ("decode_scale_write_16bpp", "decode_scale_write_32bpp"):
        if key in c:
            m = c[key]
            out.append(
                (
                    f"avatar frame: 512x512 JPEG -> 1280x720 fb, {key[-5:]} (median / p95)",
                    f"{ms(m['median_ms'])} / {ms(m['p95_ms'])}",
                    f"bare PyAV decode {ms(bare)}",
                    f"{m['median_ms'] / bare:.2f}",
                    f"< {d.get('aim_ms', 3.0)} ms",
                )
            )
    s = d.get("sustained", {})
    if "service_frames" in s:
        sf = s["service_frames"]
        base = s.get("audio_only", {}).get("cpu_percent")
        out.append(
            (
                "25 fps service frames while audio plays",
                f"{sf['fps']} fps, CPU {sf['cpu_percent']} %",
                f"audio only: CPU {base} %" if base is not None else "",
                "",
                "25 fps",
            )
        )
    return out


def rows_peer(d: dict[str, Any]) -> list[Row]:
    return [
        (
            "peer: concurrent two-way audio calls kept in real time",
            f"{d['capacity_calls']} calls",
            f"first behind at {d.get('first_behind_at')}",
            "",
            "",
        ),
        ("peer: CPU per call", f"{d['peer_cpu_per_call_pct']} % of a core", "", "", ""),
    ]


def rows_proof(d: dict[str, Any]) -> list[Row]:
    out: list[Row] = []
    r = d.get("reconnect")
    if r:
        bare = r["bare_aiortc_connect_s"]["median"] * 1000
        drop = r["drop_to_healthy_s"]
        out.append(
            (
                f"reconnect: call dropped -> healthy new call (median of {drop['n']}, "
                f"incl. {r['config']['initial_s']} s backoff)",
                f"{ms(drop['median'] * 1000)} (p90 {ms(drop['p90'] * 1000)})",
                f"bare aiortc connect {ms(bare)}",
                f"{drop['median'] * 1000 / bare:.2f}",
                "",
            )
        )
        for tag, label in (("", "streaming idle RTP"), ("silent_", "silent between replies")):
            if f"{tag}peer_restart_to_healthy_s" not in r:
                continue
            seen = r[f"{tag}peer_killed_to_unhealthy_s"]
            pr = r[f"{tag}peer_restart_to_healthy_s"]
            out.append(
                (
                    f"reconnect: peer ({label}) killed -> loss seen; restarted -> healthy "
                    f"(median of {pr['n']}, backoff max {r['config']['max_s']} s)",
                    f"{ms(seen['median'] * 1000)}; {ms(pr['median'] * 1000)}",
                    f"bare aiortc connect {ms(bare)}",
                    "",
                    "",
                )
            )
    m = d.get("memory")
    if m:
        a, b = m["rtedge"], m["bare_aiortc"]
        out.append(
            (
                f"RSS over {m['cycles']} reconnect cycles (growth per 100 after warm-up)",
                f"{a['rss_mb']['first']} -> {a['rss_mb']['last']} MB "
                f"({a['rss_mb']['per_100_cycles']:+.2f} MB)",
                f"bare aiortc {b['rss_mb']['first']} -> {b['rss_mb']['last']} MB "
                f"({b['rss_mb']['per_100_cycles']:+.2f} MB)",
                "",
                "< 150 MB, flat",
            )
        )
        out.append(
            (
                f"fds / threads / tasks over {m['cycles']} cycles",
                f"{a['fds']['first']:.0f}->{a['fds']['last']:.0f} / "
                f"{a['threads']['first']:.0f}->{a['threads']['last']:.0f} / "
                f"{a['tasks']['first']:.0f}->{a['tasks']['last']:.0f}",
                f"bare {b['fds']['first']:.0f}->{b['fds']['last']:.0f} / "
                f"{b['threads']['first']:.0f}->{b['threads']['last']:.0f} / "
                f"{b['tasks']['first']:.0f}->{b['tasks']['last']:.0f}",
                "",
                "no growth",
            )
        )
    s = d.get("startup")
    if s:
        imp = s["baseline_import_aiortc_s"]["median"] * 1000
        rd = s["to_ready_s"]["median"] * 1000
        out.append(
            (
                f"start-up to READY=1 (median of {s['to_ready_s']['n']})",
                ms(rd),
                f"`python -c 'import aiortc'` {ms(imp)}",
                f"{rd / imp:.2f}",
                "",
            )
        )
        out.append(
            (
                "start-up to the first healthy call",
                ms(s["to_first_healthy_call_s"]["median"] * 1000),
                f"`python -c pass` {ms(s['baseline_python_pass_s']['median'] * 1000)}",
                "",
                "",
            )
        )
    return out


def rows_protocol(d: dict[str, Any]) -> list[Row]:
    out: list[Row] = []
    s = d.get("startup")
    if s:
        out.append(
            (
                f"start-up to READY=1 (median of {s['to_ready_s']['n']})",
                ms(s["to_ready_s"]["median"] * 1000),
                '`python -c "import aiortc, av, numpy, aiohttp"` '
                + ms(s["baseline_stack_import_s"]["median"] * 1000),
                f"{s['ratio']:.2f}",
                "<= 1.3",
            )
        )
    st = d.get("steady")
    if st:
        out.append(
            (
                f"steady RSS during a call ({st['turns']} turns, median)",
                f"{st['rtedge_rss_mb']['median']:.1f} MB",
                f"bare aiortc client in a call {st['bare_aiortc_rss_mb']['median']:.1f} MB",
                f"{st['ratio']:.2f}",
                "<= 1.15",
            )
        )
        n = len(st["openai_modules_in_daemon"])
        out.append(("`openai` modules in the running daemon", str(n), "", "", "0"))
    for etype, e in (d.get("decode") or {}).items():
        out.append(
            (
                f"decode `{etype}` ({e['bytes']} B)",
                f"{e['decode_us']:.1f} us",
                f"`json.loads` {e['json_loads_us']:.1f} us",
                f"{e['ratio']:.2f}",
                "",
            )
        )
    return out


READERS: dict[str, Callable[[dict[str, Any]], list[Row]]] = {
    "audio": rows_audio,
    "display": rows_display,
    "peer": rows_peer,
    "proof": rows_proof,
    "protocol": rows_protocol,
}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--dir", type=Path, default=ROOT / "bench-results")
    ap.add_argument("--since", type=float, default=0.0)
    ap.add_argument("--missing", default="", help="comma-separated benchmarks not run, and why")
    ap.add_argument("--load-start", default="", help="/proc/loadavg when the run began")
    args = ap.parse_args()
    date = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    m = machine()
    combined: dict[str, Any] = {
        "date": date,
        "machine": m,
        "loadavg_at_start": args.load_start,
        "benchmarks": {},
        "not_run": {},
    }
    rows: list[Row] = []
    for name, reader in READERS.items():
        path = args.dir / f"{name}.json"
        if not path.exists() or path.stat().st_mtime < args.since:
            combined["not_run"][name] = "no result from this run"
            continue
        data = json.loads(path.read_text())
        combined["benchmarks"][name] = data
        try:
            rows += reader(data)
        except (KeyError, TypeError, ZeroDivisionError) as exc:
            rows.append((name, f"(unreadable result: {exc!r})", "", "", ""))
    combined["exited_nonzero"] = []
    for item in filter(None, args.missing.split(",")):
        name, _, why = item.partition(":")
        if why == "failed" and name in combined["benchmarks"]:
            # It ran and wrote its figures, then exited non-zero: its own budget check failed.
            combined["exited_nonzero"].append(name)
        else:
            combined["not_run"][name] = why or "not run"
    (args.dir / "bench.json").write_text(json.dumps(combined, indent=1) + "\n")
    lines = [
        f"Benchmarks of {date} on {m['arch']}, {m['nproc']} cores, {m['cpu']} "
        f"(Linux {m['kernel']}, Python {m['python']}); every baseline measured in the same run. "
        f"Load average {args.load_start or '?'} at the start, {m['loadavg_at_report']} at the end.",
        "",
        "| benchmark | rtedge | baseline (same run) | ratio | budget |",
        "|---|---|---|---|---|",
    ]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    if combined["exited_nonzero"]:
        names = ", ".join(f"scripts/bench_{n}.py" for n in combined["exited_nonzero"])
        lines += ["", f"{names}: exited non-zero in this run (its own budget check failed)."]
    if combined["not_run"]:
        lines += [
            "",
            "Not in this run: " + "; ".join(f"{k} ({v})" for k, v in combined["not_run"].items()),
        ]
    (args.dir / "bench.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
