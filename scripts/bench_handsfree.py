#!/usr/bin/env python3
"""Hands-free benchmark: CPU per second of listening beside the push-to-talk pipeline, in the
same run, and the turn latencies the front end adds.

All on the capture thread's own code, fed 20 ms periods as fast as it takes them (no device,
so nothing but the work itself is measured), with a speaker reference written as the playback
thread writes it:

* ``ptt``: what a held button costs per period: Opus encoding of the microphone (MicEncoder,
  the daemon's settings). The baseline.
* ``listening``: what waiting for the wake word costs per period: AEC3 + NS (pywebrtc-audio)
  on the microphone against the speaker's output, the linear echo canceller, the wake-word
  model and the voice detector (``rtedge.audio.frontend.Frontend``), while the assistant talks
  (so every stage works).
* ``listening_quiet``: the same with a silent speaker (a room waiting for its wake word).

Latencies, in audio time (what the front end adds; the capture period and the network come on
top): wake-to-first-packet (the period the wake word fires in is the first one sent), and
end-of-speech-to-commit (the end of the voice to the gate's END, plus the commit delay).

Usage: scripts/bench_handsfree.py [--seconds 60] [--out bench-results/handsfree.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rtedge.audio.echo import ReferenceTap  # noqa: E402
from rtedge.audio.frontend import Frontend  # noqa: E402
from rtedge.audio.handsfree_gate import GateEvent  # noqa: E402
from rtedge.audio.opus import MicEncoder  # noqa: E402
from rtedge.realtime.conversation import COMMIT_DELAY_S  # noqa: E402
from rtedge.settings import AudioSettings  # noqa: E402
from rtedge.settings_handsfree import WakeSettings  # noqa: E402
from tests.handsfree.speech import NEGATIVE_SENTENCES, WAKE_PHRASES, speech  # noqa: E402

RATE = 48000
PERIOD = 960


def echo(far: np.ndarray, delay_ms: float = 45, gain: float = 0.5) -> np.ndarray:
    d = int(RATE * delay_ms / 1000)
    out = np.zeros(far.size)
    for extra, g in ((0, gain), (0.007, gain * 0.35), (0.019, gain * 0.15)):
        k = d + int(RATE * extra)
        out[k:] += far[: far.size - k] * g
    return out


def make_frontend(
    events: list[tuple[int, GateEvent]], pos: list[int]
) -> tuple[Frontend, ReferenceTap]:
    # the card's clock is the audio's (fed faster than real time): the period just taken ends
    def clock() -> float:
        return (pos[0] + PERIOD) / RATE

    tap = ReferenceTap(RATE, 2, clock=clock)
    front = Frontend(
        AudioSettings(echo_cancel=True, noise_suppression=True),
        WakeSettings(enabled=True, model="hey_jarvis"),
        tap=tap,
        period_frames=PERIOD,
        on_event=lambda e: events.append((pos[0], e)),
        clock=clock,
    )
    return front, tap


def listening_cpu(far: np.ndarray, mic: np.ndarray) -> float:
    """CPU seconds per second of audio of the whole front end."""
    events: list[tuple[int, GateEvent]] = []
    pos = [0]
    front, tap = make_frontend(events, pos)
    written = 0
    cpu = 0.0
    for p in range(0, mic.size - PERIOD + 1, PERIOD):
        pos[0] = p
        while written < p + 2 * PERIOD and written + 480 <= far.size:
            tap.write(written, np.repeat(far[written : written + 480], 2), 960)
            written += 480
        t0 = time.process_time()
        front.process(mic[p : p + PERIOD])
        cpu += time.process_time() - t0
    return cpu / (mic.size / RATE)


def ptt_cpu(mic: np.ndarray) -> float:
    enc = MicEncoder(64000, 5)
    cpu = 0.0
    for p in range(0, mic.size - PERIOD + 1, PERIOD):
        t0 = time.process_time()
        enc.encode(mic[p : p + PERIOD])
        cpu += time.process_time() - t0
    return cpu / (mic.size / RATE)


def latencies() -> dict[str, float]:
    """Audio time from the wake word's firing to the first packet, and from the end of the
    question's voice to the gate's END (plus the commit delay)."""
    events: list[tuple[int, GateEvent]] = []
    pos = [0]
    front, tap = make_frontend(events, pos)
    sent_at: list[int] = []
    pcm = speech(WAKE_PHRASES[0])
    mic = np.concatenate([np.zeros(RATE), pcm, np.zeros(2 * RATE)]).astype(np.int16)
    # the end of the voice: the last 20 ms period of the phrase above -40 dBFS
    levels = [
        float(np.sqrt(np.mean((mic[p : p + PERIOD] / 32768.0) ** 2)))
        for p in range(0, mic.size - PERIOD + 1, PERIOD)
    ]
    voice_end = (max(i for i, v in enumerate(levels) if v > 0.01) + 1) * PERIOD
    for p in range(0, mic.size - PERIOD + 1, PERIOD):
        pos[0] = p
        tap.write(p, np.zeros(2 * PERIOD, dtype=np.int16), 960)
        _, gate_open = front.process(mic[p : p + PERIOD])
        if gate_open:
            sent_at.append(p)
    wake = next(p for p, e in events if e is GateEvent.WAKE)
    end = next(p for p, e in events if e is GateEvent.END)
    return {
        "wake_to_first_packet_ms": (sent_at[0] - wake) / RATE * 1000,
        "end_of_speech_to_end_ms": (end + PERIOD - voice_end) / RATE * 1000,
        "end_of_speech_to_commit_ms": (end + PERIOD - voice_end) / RATE * 1000
        + COMMIT_DELAY_S * 1000,
    }


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--out", type=Path, default=Path("bench-results/handsfree.json"))
    args = ap.parse_args()
    talk = np.concatenate([speech(s) for s in NEGATIVE_SENTENCES])
    n = int(args.seconds * RATE)
    far = np.resize(talk, n).astype(np.int16)
    rng = np.random.default_rng(1)
    mic_talk = np.clip(echo(far.astype(np.float64)) + rng.normal(0, 10, n), -32768, 32767)
    mic_quiet = np.clip(rng.normal(0, 10, n), -32768, 32767).astype(np.int16)
    results = {
        "ptt_cpu_percent": 100 * ptt_cpu(mic_talk.astype(np.int16)),
        "listening_cpu_percent": 100 * listening_cpu(far, mic_talk.astype(np.int16)),
        "listening_quiet_cpu_percent": 100 * listening_cpu(np.zeros(n, dtype=np.int16), mic_quiet),
    }
    results["listening_over_ptt"] = results["listening_cpu_percent"] / results["ptt_cpu_percent"]
    results.update(latencies())
    results = {k: round(v, 2) for k, v in results.items()}
    record = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.processor() or ''}",
        "loadavg": Path("/proc/loadavg").read_text().split()[:3],
        "seconds": args.seconds,
        **results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=2) + "\n")
    print(json.dumps(record, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
