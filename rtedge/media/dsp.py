"""Sample-format plumbing: conversion with PyAV's resampler, fixed-size re-chunking, levels,
gain and the earcon tones. Pure functions and small stateful helpers; no I/O, no threads."""

from __future__ import annotations

import fractions
import math
from typing import Any

import av
import numpy as np
import numpy.typing as npt

Int16Array = npt.NDArray[np.int16]

WEBRTC_RATE = 48000
"""Rate of every frame handed to or taken from aiortc."""

FRAME_SAMPLES = 960
"""One WebRTC audio frame: 20 ms at ``WEBRTC_RATE``, one Opus packet."""

TIME_BASE = fractions.Fraction(1, WEBRTC_RATE)
"""The time base of audio frames and packets (one tick a sample)."""

SILENCE_RMS = 1e-3
"""RMS (0..1 full scale) below which a period counts as silence (about -60 dBFS)."""

_LAYOUTS = {1: "mono", 2: "stereo", 3: "2.1", 4: "quad", 5: "5.0", 6: "5.1", 7: "6.1", 8: "7.1"}


def layout_name(channels: int) -> str:
    """The PyAV/FFmpeg layout name for an interleaved stream of ``channels`` channels."""
    try:
        return _LAYOUTS[channels]
    except KeyError:
        raise ValueError(f"unsupported channel count {channels}") from None


def rms(samples: Int16Array) -> float:
    """Root mean square of s16 samples as a fraction of full scale (0..1).

    Two numpy calls: in an audio thread that wakes every period, each call runs with cold
    caches and costs tens of microseconds, so the count matters more than the arithmetic."""
    if samples.size == 0:
        return 0.0
    x = samples.astype(np.float64)
    return math.sqrt(float(x.dot(x)) / x.size) / 32768.0


SILENCE_DBFS = -120.0
"""The floor of ``dbfs``: what digital silence reads as."""


def level_dbfs(level: float) -> float:
    """An RMS level (0..1 of full scale, as ``rms`` gives) in dBFS, floored at ``SILENCE_DBFS``."""
    return max(SILENCE_DBFS, 20.0 * math.log10(level + 1e-12))


def dbfs(samples: Int16Array) -> float:
    """RMS level of s16 samples in dB relative to full scale (``SILENCE_DBFS`` for silence)."""
    return level_dbfs(rms(samples))


def apply_gain(samples: Int16Array, gain: float) -> Int16Array:
    """Scale s16 samples by ``gain`` with saturation (software volume)."""
    if gain == 1.0:
        return samples
    if gain == 0.0:
        return np.zeros_like(samples)
    scaled = samples.astype(np.float32) * np.float32(gain)
    out: Int16Array = np.clip(scaled, -32768, 32767).astype(np.int16)
    return out


class Converter:
    """Converts interleaved s16 audio between (rate, channels) pairs with ``av.AudioResampler``.

    Stateful (the resampler keeps filter history), so one instance per stream. When input and
    output already match, samples pass through untouched and no resampler is built.
    """

    def __init__(self, in_rate: int, in_channels: int, out_rate: int, out_channels: int) -> None:
        self.in_rate = in_rate
        self.in_channels = in_channels
        self.out_rate = out_rate
        self.out_channels = out_channels
        self._in_layout = layout_name(in_channels)
        self._passthrough = in_rate == out_rate and in_channels == out_channels
        self._resampler: Any = None
        if not self._passthrough:
            self._resampler = av.AudioResampler(
                format="s16", layout=layout_name(out_channels), rate=out_rate
            )
        self._pts = 0
        self._resampled = False

    @property
    def passthrough(self) -> bool:
        return self._passthrough

    def convert(self, samples: Int16Array) -> Int16Array:
        """Interleaved s16 in, interleaved s16 out (possibly empty while the filter fills)."""
        if self._passthrough:
            return samples
        n = samples.size // self.in_channels
        frame = av.AudioFrame.from_ndarray(
            samples.reshape(1, -1), format="s16", layout=self._in_layout
        )
        frame.sample_rate = self.in_rate
        frame.pts = self._pts
        frame.time_base = fractions.Fraction(1, self.in_rate)
        self._pts += n
        return _frames_to_array(self._resampler.resample(frame))

    def convert_frame(self, frame: Any) -> Int16Array:
        """Convert an ``av.AudioFrame`` of any format/layout/rate (the resampler adapts to it).

        A frame already in the output shape (what aiortc's Opus decoder gives a stereo 48 kHz
        speaker) is read in place, without the resampler and without a copy, as long as no
        earlier frame went through the resampler (whose delay line would be cut short)."""
        if (
            not self._resampled
            and frame.sample_rate == self.out_rate
            and frame.format.name == "s16"
            and frame.layout.nb_channels == self.out_channels
        ):
            n = frame.samples * self.out_channels
            return np.frombuffer(frame.planes[0], dtype=np.int16, count=n)
        self._resampled = True  # from now on, every frame through the resampler
        if self._resampler is None:
            self._resampler = av.AudioResampler(
                format="s16", layout=layout_name(self.out_channels), rate=self.out_rate
            )
            self._passthrough = False
        return _frames_to_array(self._resampler.resample(frame))

    def flush(self) -> Int16Array:
        """What the resampler's filter still holds at the end of a stream (empty if none)."""
        if self._resampler is None:
            return np.zeros(0, dtype=np.int16)
        return _frames_to_array(self._resampler.resample(None))


def resample(samples: Int16Array, in_rate: int, out_rate: int, channels: int = 1) -> Int16Array:
    """A whole clip from ``in_rate`` to ``out_rate`` (a new array, the filter's tail included)."""
    if in_rate == out_rate or samples.size == 0:
        return samples.copy()
    converter = Converter(in_rate, channels, out_rate, channels)
    return np.concatenate((converter.convert(samples), converter.flush()))


def _frames_to_array(frames: list[Any]) -> Int16Array:
    if not frames:
        return np.zeros(0, dtype=np.int16)
    parts = [np.asarray(f.to_ndarray(), dtype=np.int16).reshape(-1) for f in frames]
    return parts[0] if len(parts) == 1 else np.concatenate(parts)


class Rechunker:
    """Collects interleaved samples and hands them out in chunks of exactly ``frames`` frames."""

    def __init__(self, frames: int, channels: int) -> None:
        self.frames = frames
        self.channels = channels
        self._size = frames * channels
        self._buf: Int16Array = np.zeros(0, dtype=np.int16)

    def push(self, samples: Int16Array) -> list[Int16Array]:
        if not self._buf.size and samples.size == self._size:
            return [samples]  # the usual case: the device's period is the chunk
        buf = np.concatenate((self._buf, samples)) if self._buf.size else samples
        n = buf.size // self._size
        out = [buf[i * self._size : (i + 1) * self._size] for i in range(n)]
        self._buf = buf[n * self._size :].copy()
        return out

    def clear(self) -> None:
        self._buf = np.zeros(0, dtype=np.int16)


def tone(
    freqs: list[float],
    *,
    rate: int,
    channels: int,
    note_s: float = 0.06,
    amplitude: float = 0.25,
    fade_s: float = 0.006,
) -> Int16Array:
    """A short sequence of sine notes with raised-cosine edges, interleaved s16."""
    n = int(round(note_s * rate))
    t = np.arange(n, dtype=np.float64) / rate
    fade = max(1, int(round(fade_s * rate)))
    env = np.ones(n)
    ramp = 0.5 - 0.5 * np.cos(np.linspace(0.0, np.pi, fade))
    env[:fade] = ramp
    env[-fade:] = ramp[::-1]
    notes = [np.sin(2 * np.pi * f * t) * env for f in freqs]
    mono = np.concatenate(notes) * amplitude * 32767.0
    samples = np.repeat(mono.astype(np.int16), channels)
    return samples


def earcon_samples(name: str, *, rate: int, channels: int) -> Int16Array:
    """The built-in earcons: a rising pair of notes on press, a falling pair on release."""
    if name == "press":
        return tone([880.0, 1320.0], rate=rate, channels=channels)
    if name == "release":
        return tone([1320.0, 880.0], rate=rate, channels=channels)
    raise ValueError(f"unknown earcon {name!r}")


__all__ = [
    "FRAME_SAMPLES",
    "SILENCE_DBFS",
    "SILENCE_RMS",
    "TIME_BASE",
    "WEBRTC_RATE",
    "Converter",
    "Int16Array",
    "Rechunker",
    "apply_gain",
    "dbfs",
    "earcon_samples",
    "layout_name",
    "level_dbfs",
    "resample",
    "rms",
    "tone",
]
