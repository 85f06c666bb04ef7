#!/usr/bin/env python3
"""Captions benchmark: what drawing captions costs the display while audio plays.

In one run, on a 1280x720 32 bpp file framebuffer, while an aiortc audio call (Opus over
loopback RTP in the same event loop, as in the daemon) plays and the local avatar lip-syncs at
25 fps:
1. captions off (the baseline) and captions on, alternated over several rounds; with captions a
   reply streams word by word, paced by the voice (the band redrawn at each new word): process
   CPU, the avatar's frame interval, the audio frames received per second, and the thread time
   of each caption drawing;
2. caption latency: a transcript event written to State -> the band's pixels in the framebuffer
   (the pixels themselves are read back and compared with the caption rendered alone).

Writes bench-results/captions.json and prints a markdown table.
Usage: scripts/bench_captions.py [--seconds 6] [--events 40]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from bench_display import AudioLoopback, make_fb, until  # noqa: E402

from rtedge.display.caption_layer import DrawnCaption  # noqa: E402
from rtedge.display.caption_render import CaptionRenderer  # noqa: E402
from rtedge.display.pipeline import DisplayPipeline, ShownFrame  # noqa: E402
from rtedge.settings import DisplaySettings  # noqa: E402
from rtedge.state import Connection, State, Turn  # noqa: E402

W, H = 1280, 720
FONT = 40
WORDS = [
    "The",
    "weather",
    "today",
    "is",
    "sunny",
    "with",
    "a",
    "light",
    "breeze",
    "from",
    "the",
    "west",
    "and",
    "the",
    "evening",
    "will",
    "be",
    "clear",
    "and",
    "cool",
    "so",
    "bring",
    "a",
    "jacket",
    "if",
    "you",
    "go",
    "out",
    "after",
    "dark",
]


def stats_ms(values: list[float]) -> dict[str, float]:
    ms = sorted(v * 1e3 for v in values)
    if not ms:
        return {"n": 0}
    return {
        "n": len(ms),
        "mean_ms": round(statistics.fmean(ms), 2),
        "median_ms": round(ms[len(ms) // 2], 2),
        "p95_ms": round(ms[min(len(ms) - 1, int(len(ms) * 0.95))], 2),
        "max_ms": round(ms[-1], 2),
    }


async def phase(
    tmp: Path, audio: AudioLoopback, captions: bool, seconds: float, name: str
) -> dict[str, Any]:
    (tmp / name).mkdir()
    device, sysfs = make_fb(tmp / name, 32)
    t0 = time.monotonic()

    def clock() -> float:
        return time.monotonic() - t0

    voice: list[float | None] = [None]
    state = State(connection=Connection.CONNECTED)
    shown: list[ShownFrame] = []
    settings = DisplaySettings(
        backend="fbdev",
        fbdev=device,
        sysfs=sysfs,
        local_avatar=True,
        captions=captions,
        caption_font_size=FONT,
    )
    p = DisplayPipeline(
        settings,
        state,
        clock=clock,
        level=lambda: audio.level,
        onset=lambda: voice[0],
        on_shown=shown.append,
    )
    drawn: list[DrawnCaption] = []
    if p.captions is not None:
        p.captions.on_drawn = drawn.append
    await p.start()
    await until(lambda: "display" in state.devices and state.devices["display"].ok)
    state.update(turn=Turn.SPEAKING, transcript_user="what is the weather like")
    voice[0] = clock()
    await asyncio.sleep(0.5)  # warm up: first drawings, first avatar frames
    start, drawn0 = len(shown), len(drawn)
    audio0, cpu0, w0 = audio.frames, time.process_time(), time.monotonic()
    text = ""
    for word in WORDS:  # the reply's transcript arrives ahead of the voice, as from a service
        text = f"{text} {word}".strip()
        state.update(transcript_assistant=text)
        await asyncio.sleep(seconds / len(WORDS))
    wall = time.monotonic() - w0
    cpu = time.process_time() - cpu0
    frames = [f.shown for f in shown[start:] if f.source == "avatar"]
    intervals = list(np.diff(frames)) if len(frames) > 1 else []
    out = {
        "captions": captions,
        "cpu_percent": round(100 * cpu / wall, 1),
        "avatar_fps": round(len(frames) / wall, 2),
        "audio_frames_per_s": round((audio.frames - audio0) / wall, 1),
        "caption_draws": len(drawn) - drawn0,
        "_intervals": [float(x) for x in intervals],
        "_draws": [d.render_s for d in drawn[drawn0:]],
    }
    await p.stop()
    return out


async def latency(tmp: Path, audio: AudioLoopback, events: int) -> dict[str, Any]:
    (tmp / "latency").mkdir()
    device, sysfs = make_fb(tmp / "latency", 32)
    t0 = time.monotonic()
    state = State(connection=Connection.CONNECTED)
    settings = DisplaySettings(
        backend="fbdev",
        fbdev=device,
        sysfs=sysfs,
        local_avatar=True,
        captions=True,
        caption_font_size=FONT,
    )
    p = DisplayPipeline(
        settings,
        state,
        clock=lambda: time.monotonic() - t0,
        level=lambda: audio.level,
        onset=lambda: 0.0,
    )
    assert p.captions is not None
    drawn: list[DrawnCaption] = []
    p.captions.on_drawn = drawn.append
    await p.start()
    await until(lambda: "display" in state.devices and state.devices["display"].ok)
    state.update(turn=Turn.SPEAKING)  # the avatar keeps drawing at 25 fps meanwhile
    await until(lambda: bool(drawn))
    fb = np.memmap(device, dtype=np.uint8, mode="r").reshape(H, W, 4)
    renderer = CaptionRenderer(
        W, font_path=settings.caption_font, font_size=FONT, lines=settings.caption_lines
    )
    lags: list[float] = []
    matched = 0
    for i in range(events):
        # Turn IDLE: a finished reply's text is shown as it comes (no voice pacing), so this
        # measures the path itself: State listener -> display thread -> Pillow -> framebuffer.
        n = len(drawn)
        t = time.monotonic()
        state.update(transcript_assistant=" ".join(WORDS[: 3 + i % (len(WORDS) - 3)]) + f" {i}")
        await until(lambda n=n: len(drawn) > n, within=5)
        d = drawn[-1]
        lags.append(d.at - t)
        alone = renderer.render(d.view)
        band = np.asarray(fb[H - alone.shape[0] :, :, [2, 1, 0]])
        matched += int((band == alone).all())
        await asyncio.sleep(0.1)
    await p.stop()
    return {"event_to_pixels": stats_ms(lags), "pixels_verified": f"{matched}/{events}"}


async def run(seconds: float, events: int, rounds: int) -> dict[str, Any]:
    audio = AudioLoopback()
    await audio.start()
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        # Alternated, so a neighbour's burst of load or a warm-up does not land on one side only.
        runs: dict[bool, list[dict[str, Any]]] = {False: [], True: []}
        for k in range(2 * rounds):
            on = k % 2 == 1
            runs[on].append(await phase(tmp, audio, on, seconds, f"r{k}"))
        lat = await latency(tmp, audio, events)
    await audio.stop()
    return {"captions_off": pooled(runs[False]), "captions_on": pooled(runs[True]), "latency": lat}


def pooled(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The rounds of one mode together: means of the rates, statistics over every interval."""
    return {
        "rounds": len(runs),
        "cpu_percent": round(statistics.fmean(r["cpu_percent"] for r in runs), 1),
        "cpu_percent_rounds": [r["cpu_percent"] for r in runs],
        "avatar_fps": round(statistics.fmean(r["avatar_fps"] for r in runs), 2),
        "avatar_frame_interval": stats_ms([x for r in runs for x in r["_intervals"]]),
        "audio_frames_per_s": round(statistics.fmean(r["audio_frames_per_s"] for r in runs), 1),
        "caption_draws": sum(r["caption_draws"] for r in runs),
        "caption_draw_thread_time": stats_ms([x for r in runs for x in r["_draws"]]),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--seconds", type=float, default=6.0, help="length of each phase")
    ap.add_argument("--events", type=int, default=40, help="transcript events timed")
    ap.add_argument("--rounds", type=int, default=3, help="off/on phase pairs, alternated")
    ap.add_argument("--out", type=Path, default=ROOT / "bench-results" / "captions.json")
    args = ap.parse_args()
    import logging

    logging.getLogger("libav").setLevel(logging.ERROR)
    res = asyncio.run(run(args.seconds, args.events, args.rounds))
    off, on, lat = res["captions_off"], res["captions_on"], res["latency"]
    result = {
        "machine": {
            "python": platform.python_version(),
            "cpu": platform.processor() or platform.machine(),
            "cores": os.cpu_count(),
            "loadavg_start": os.getloadavg(),
        },
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "framebuffer": f"{W}x{H} 32 bpp",
        "font_size": FONT,
        **res,
        "cpu_ratio_on_vs_off": round(on["cpu_percent"] / max(off["cpu_percent"], 0.1), 2),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"## Captions: {W}x{H} framebuffer, local avatar at 25 fps, aiortc audio call playing\n")
    print(
        "| | CPU % | avatar fps | frame interval p95 ms | audio frames/s | band draws "
        "| draw ms (mean / p95) |"
    )
    print("|---|---:|---:|---:|---:|---:|---|")
    for label, r in (("captions off", off), ("captions on", on)):
        d = r["caption_draw_thread_time"]
        draw = f"{d['mean_ms']} / {d['p95_ms']}" if d.get("n") else "-"
        print(
            f"| {label} | {r['cpu_percent']} | {r['avatar_fps']} | "
            f"{r['avatar_frame_interval'].get('p95_ms', '-')} | {r['audio_frames_per_s']} | "
            f"{r['caption_draws']} | {draw} |"
        )
    e = lat["event_to_pixels"]
    print(f"\nCPU on/off: x{result['cpu_ratio_on_vs_off']}")
    print(
        f"caption latency, transcript event -> pixels in the framebuffer: median "
        f"{e['median_ms']} ms, p95 {e['p95_ms']} ms, max {e['max_ms']} ms "
        f"(pixels verified {lat['pixels_verified']})"
    )
    print(f"\nwrote {args.out.relative_to(ROOT) if args.out.is_relative_to(ROOT) else args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
