#!/usr/bin/env python3
"""Rotation under use: ``rtedge run`` against ``rtedge peer`` (real processes, real WebRTC) with
a short session cap, a push-to-talk turn after another, and the next press the moment a reply ends,
which is when a due rotation switches calls. Three runs on the same machine, one after another:

- ``baseline``: no rotation (the same turns, the floor for every figure);
- ``make_before_break``: rotation every ``--rotate-s``, the next call prepared and seeded while
  the current one serves (the default);
- ``break_before_make``: the same cap, the old way (hang up, then connect).

Figures per run, for ``--rotations`` rotations (baseline: as many turns as the rotating run took):

- lost turns (a press that got no reply) and doubled turns (more completed replies than presses,
  counted from the peer's record of every call);
- presses that landed while the daemon had no call (its "pressed while not connected" log line);
- the gap at the speaker: the peer runs in ``echo`` mode, so each reply is the turn's own
  continuous tone played back; any run of digital silence inside a reply as it reached the
  speaker (ALSA file plugin), between its first and last voiced 10 ms, is underrun silence.
  Reported over all replies and for the replies around each switch (the one that ended as the
  rotation fell due and the first on the new call);
- each reply's stretch at the speaker: its voiced span minus the tone's length.

Writes ``bench-results/rotation.json`` and ``bench-results/rotation.md``.

Usage: .venv/bin/python scripts/bench_rotation.py [--rotations 20] [--rotate-s 3]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import platform
import re
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support import Daemon, Peer, tone, wait_for  # noqa: E402

RATE = 48_000
CHUNK = RATE // 100  # 10 ms
VOICED_RMS = 0.01
#: Voiced chunks closer than this belong to one reply (the voice's own sentence gaps are shorter).
REPLY_GAP_S = 0.6
TONE_S = 1.0
PERIOD_MS = 10  # the daemon's playback period (audio.playback_period_ms default)


def machine() -> str:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import os

    return f"{platform.machine()}, {os.cpu_count()} cores, {model}".strip(", ")


def replies_at_speaker(pcm: np.ndarray) -> list[tuple[int, int]]:
    """(first, last) sample of each reply heard at the speaker."""
    n = pcm.size // CHUNK
    frames = pcm[: n * CHUNK].reshape(n, CHUNK).astype(np.float32) / 32768
    voiced = np.flatnonzero(np.sqrt((frames**2).mean(axis=1)) > VOICED_RMS)
    spans: list[tuple[int, int]] = []
    for idx in voiced:
        if spans and idx - spans[-1][1] <= REPLY_GAP_S * 100:
            spans[-1] = (spans[-1][0], int(idx))
        else:
            spans.append((int(idx), int(idx)))
    return [(a * CHUNK, (b + 1) * CHUNK) for a, b in spans]


def longest_zero_run_ms(segment: np.ndarray) -> float:
    zero = segment == 0
    if not zero.any():
        return 0.0
    edges = np.diff(np.concatenate(([0], zero.view(np.int8), [0])))
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    return float((ends - starts).max()) * 1000 / RATE


def speaker_left(daemon: Daemon) -> np.ndarray:
    raw = np.frombuffer(daemon.alsa.speaker.read_bytes()[44:], dtype=np.int16)
    return raw[: raw.size // 2 * 2].reshape(-1, 2)[:, 0]


def one_run(
    name: str, rotate_s: float | None, mbb: bool, target: int, work: Path
) -> dict[str, Any]:
    work.mkdir()
    peer = Peer(work, "--mode", "echo").start()
    config: dict[str, dict[str, Any]] = {
        "realtime": {
            "rotate_after_s": rotate_s or 3600.0,
            "make_before_break": mbb,
            "connect_timeout_s": 10,
        },
        "ptt": {"min_press_ms": 0},
        "reconnect": {"initial_s": 0.3, "max_s": 2, "jitter": 0.1, "healthy_after_s": 2},
    }
    daemon = Daemon(work, peer.calls_url, config=config).start()
    presses = lost = 0
    per_turn: list[dict[str, Any]] = []
    try:
        first_call = daemon.status()["call_id"]
        while True:
            rotations = daemon.log().count("session rotated")
            if rotate_s is not None and rotations >= target:
                break
            if rotate_s is None and presses >= target:
                break
            if presses >= target * 4:
                break  # a run that cannot rotate must still end
            done_before = daemon.status()["events_in"].get("response.done", 0)
            presses += 1
            daemon.press()
            t_press = time.monotonic()
            daemon.alsa.feeder.play(tone(TONE_S, 300.0))
            time.sleep(0.05)
            wait_for(lambda: not daemon.alsa.feeder.speaking.is_set(), 30, "speech fed")
            time.sleep(0.1)
            daemon.release()
            try:
                wait_for(
                    lambda b=done_before: daemon.status()["events_in"].get("response.done", 0) > b,
                    8,
                    "reply",
                )
                got = True
            except AssertionError:
                got = False
                lost += 1
            wait_for(lambda: daemon.status()["turn"] == "idle", 30, "idle")
            per_turn.append(
                {
                    "press_at_s": round(t_press, 3),
                    "replied": got,
                    "rotations_before": rotations,
                }
            )
        time.sleep(1.0)  # the last reply's tail reaches the file
        calls = peer.calls()
        log = daemon.log()
        pcm = speaker_left(daemon)
    finally:
        daemon.stop()
        peer.stop()
    completed = [r for c in calls for r in c["responses"] if r["status"] == "completed"]
    replied = presses - lost
    spans = replies_at_speaker(pcm)
    gaps = [longest_zero_run_ms(pcm[a:b]) for a, b in spans]
    stretch = [(b - a) * 1000 / RATE - TONE_S * 1000 for a, b in spans]
    # replies around a switch: the call changed between this reply and the next one
    # (only when every press got a reply, so replies and presses pair up in order)
    switch_idx = [
        i
        for i, t in enumerate(per_turn[1:])
        if t["rotations_before"] > per_turn[i]["rotations_before"]
    ]
    around = (
        sorted({j for i in switch_idx for j in (i, i + 1) if j < len(gaps)}) if not lost else []
    )
    return {
        "run": name,
        "rotate_after_s": rotate_s,
        "make_before_break": mbb,
        "presses": presses,
        "rotations": log.count("session rotated"),
        "rotations_make_before_break": log.count("session rotated (make-before-break)"),
        "calls": len({c["call_id"] for c in calls}),
        "first_call": first_call,
        "lost_turns": lost,
        "doubled_turns": max(0, len(completed) - replied),
        "pressed_while_not_connected": len(re.findall("pressed while not connected", log)),
        "replies_heard": len(spans),
        "gap_ms_max": round(max(gaps), 1) if gaps else None,
        "gap_ms_around_switch_max": round(max(gaps[i] for i in around), 1) if around else None,
        "stretch_ms_mean": round(float(np.mean(stretch)), 1) if stretch else None,
        "stretch_ms_max": round(float(np.max(stretch)), 1) if stretch else None,
        "service_errors": log.count("service error"),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rotations", type=int, default=20)
    parser.add_argument("--rotate-s", type=float, default=3.0)
    parser.add_argument("--out", type=Path, default=ROOT / "bench-results")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="rtedge-rotation-"))
    runs = []
    mbb = one_run("make_before_break", args.rotate_s, True, args.rotations, work / "mbb")
    runs.append(mbb)
    runs.append(one_run("baseline", None, True, mbb["presses"], work / "base"))
    runs.append(one_run("break_before_make", args.rotate_s, False, args.rotations, work / "bbm"))
    result = {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "playback_period_ms": PERIOD_MS,
        "runs": runs,
    }
    args.out.mkdir(exist_ok=True)
    (args.out / "rotation.json").write_text(json.dumps(result, indent=2) + "\n")
    cols = [
        "run",
        "presses",
        "rotations",
        "lost_turns",
        "doubled_turns",
        "pressed_while_not_connected",
        "gap_ms_max",
        "gap_ms_around_switch_max",
        "stretch_ms_mean",
        "stretch_ms_max",
    ]
    lines = [
        f"Rotation bench, {result['date']}, {result['machine']}",
        "",
        "| " + " | ".join(cols) + " |",
        "|" + "---|" * len(cols),
    ]
    for run in runs:
        lines.append("| " + " | ".join(str(run[c]) for c in cols) + " |")
    md = "\n".join(lines) + "\n"
    (args.out / "rotation.md").write_text(md)
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
