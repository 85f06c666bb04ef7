"""Text to speech for assistant replies: espeak-ng when it is installed, else the tone voice.

The tone voice (used when ``espeak-ng`` is not on PATH, or with ``voice_engine="tones"``) is not
speech: each word becomes a short voiced hum (a 120-220 Hz fundamental with a few harmonics, pitch
picked from the word, one loudness swell per vowel group), words separated by 70 ms gaps and
sentences by 250 ms. It keeps the timing and loudness shape of speech, so transcripts line up, VAD
and lip-sync behave, and tests can assert "audio during the reply, silence after it".

Output is 48 kHz mono s16 (what the outgoing track sends), plus an estimated start time for each
word so transcript deltas can follow the audio.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import shutil
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Final, Literal

import numpy as np

from rtedge.media.dsp import resample
from rtedge.peer.audio_in import Pcm

RATE: Final = 48_000
CACHE_SIZE: Final = 64
ESPEAK_WPM: Final = 175
# OpenAI voice names mapped to espeak-ng variants, so voices differ audibly.
_FEMALE: Final = frozenset({"marin", "coral", "shimmer", "sage", "ballad"})


@dataclass(frozen=True, slots=True)
class Speech:
    text: str
    pcm: Pcm
    words: tuple[tuple[str, float], ...]  # (delta text, start second); deltas concatenate to text
    engine: str

    @property
    def duration_s(self) -> float:
        return self.pcm.size / RATE


def output_delta(speech: Speech, i: int, base_ms: int) -> dict[str, Any]:
    """GPT-Live's ``session.output_transcript.delta`` for word ``i`` of ``speech`` begun at
    ``base_ms`` on the session's timeline (each word ends where the next begins)."""
    words = speech.words
    start = words[i][1]
    end = words[i + 1][1] if i + 1 < len(words) else speech.duration_s
    return {
        "type": "session.output_transcript.delta",
        "delta": words[i][0],
        "start_ms": base_ms + int(start * 1000),
        "end_ms": base_ms + max(int(end * 1000), int(start * 1000) + 1),
    }


class Voice:
    """Synthesizes replies; results are cached (replies repeat a lot in tests and benchmarks)."""

    def __init__(self, engine: Literal["auto", "espeak", "tones"] = "auto") -> None:
        self._espeak = shutil.which("espeak-ng") if engine in ("auto", "espeak") else None
        if engine == "espeak" and self._espeak is None:
            raise RuntimeError("espeak-ng is not installed")
        self._cache: OrderedDict[tuple[str, str, float], Speech] = OrderedDict()

    @property
    def engine(self) -> str:
        return "espeak-ng" if self._espeak else "tones"

    async def speak(self, text: str, voice: str = "marin", speed: float = 1.0) -> Speech:
        key = (text, voice, speed)
        cached = self._cache.get(key)
        if cached is not None:
            self._cache.move_to_end(key)
            return cached
        if self._espeak:
            pcm = await self._run_espeak(text, voice, speed)
            engine = "espeak-ng"
        else:
            pcm = tone_voice(text, speed)
            engine = "tones"
        speech = Speech(text, pcm, word_times(text, pcm.size / RATE), engine)
        self._cache[key] = speech
        while len(self._cache) > CACHE_SIZE:
            self._cache.popitem(last=False)
        return speech

    async def _run_espeak(self, text: str, voice: str, speed: float) -> Pcm:
        assert self._espeak is not None
        variant = "en-us+f3" if voice in _FEMALE else "en-us+m3"
        # Text goes in on stdin, never argv: a reply starting with '-' must not become an option.
        proc = await asyncio.create_subprocess_exec(
            self._espeak,
            "--stdout",
            "-v",
            variant,
            "-s",
            str(int(ESPEAK_WPM * speed)),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
        )
        try:
            wav, _ = await proc.communicate(text.encode("utf-8"))
        except BaseException:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
            raise
        if proc.returncode != 0:
            raise RuntimeError(f"espeak-ng exited with {proc.returncode}")
        return wav_to_48k(wav)


def wav_to_48k(wav: bytes) -> Pcm:
    """espeak-ng's streamed WAV (its sizes are placeholders, so the header is read by hand),
    resampled to 48 kHz mono s16 with PyAV."""
    fmt = wav.find(b"fmt ")
    data = wav.find(b"data")
    if fmt < 0 or data < 0:
        raise RuntimeError("espeak-ng did not produce a WAV stream")
    rate = int.from_bytes(wav[fmt + 12 : fmt + 16], "little")
    raw = wav[data + 8 :]
    samples = np.frombuffer(raw[: len(raw) // 2 * 2], dtype="<i2").astype(np.int16)
    return resample(samples, rate, RATE)


def tone_voice(text: str, speed: float = 1.0) -> Pcm:
    """The documented fallback voice (see the module docstring)."""
    parts: list[Pcm] = [_silence(0.05)]
    for word in text.split():
        letters = sum(c.isalnum() for c in word)
        if letters == 0:
            continue
        dur = min(0.6, max(0.15, 0.075 * letters)) / speed
        digest = hashlib.blake2b(word.lower().encode(), digest_size=2).digest()
        f0 = 120.0 + digest[0] / 255.0 * 100.0
        syllables = max(1, len(re.findall(r"[aeiouy]+", word.lower())))
        t = np.arange(int(dur * RATE)) / RATE
        wave = sum(np.sin(2 * np.pi * f0 * k * t) / k for k in (1, 2, 3, 4))
        swell = np.abs(np.sin(np.pi * syllables * t / dur)) ** 0.6
        parts.append((wave * swell * 0.3 * 32767 / 1.6).astype(np.int16))
        parts.append(_silence((0.25 if word[-1] in ".!?" else 0.07) / speed))
    return np.concatenate(parts)


def _silence(seconds: float) -> Pcm:
    return np.zeros(int(seconds * RATE), dtype=np.int16)


def word_times(text: str, duration_s: float) -> tuple[tuple[str, float], ...]:
    """Split ``text`` into transcript deltas (each word with its following space) and estimate when
    each is spoken: proportional to its letters across the audio. Deltas join back to ``text``."""
    pieces = re.findall(r"\S+\s*", text)
    if not pieces:
        return ()
    lead = re.match(r"\s*", text)
    if lead and lead.group():
        pieces[0] = lead.group() + pieces[0]
    weights = [max(1, sum(c.isalnum() for c in p)) for p in pieces]
    total = float(sum(weights))
    times: list[tuple[str, float]] = []
    acc = 0.0
    for piece, w in zip(pieces, weights, strict=True):
        times.append((piece, duration_s * acc / total))
        acc += w
    return tuple(times)
