"""The ALSA PCM layer the device threads use: the ``Pcm`` seam, its parameters, opening one."""

from __future__ import annotations

import re
import select
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from rtedge.media.dsp import Int16Array


class Pcm(Protocol):
    """The part of ``alsaaudio.PCM`` the workers use."""

    def read(self) -> tuple[int, bytes]: ...
    def write(self, data: bytes | Int16Array) -> int: ...
    def avail(self) -> int: ...
    def drop(self) -> int: ...
    def close(self) -> None: ...
    def polldescriptors(self) -> list[tuple[int, int]]: ...
    def info(self) -> dict[str, Any]: ...


class DeviceError(Exception):
    """The device failed while streaming; it will be closed and reopened."""


@dataclass(frozen=True)
class PcmParams:
    device: str
    rate: int
    channels: int
    period_frames: int
    periods: int


OpenPcm = Callable[[str, PcmParams], Pcm]
"""Seam for tests and tools: ``(kind, params) -> Pcm`` with kind ``capture`` or ``playback``."""


def open_alsa_pcm(kind: str, params: PcmParams) -> Pcm:
    """Open an ALSA PCM in non-blocking mode with the given parameters (raises on failure).

    Non-blocking: a busy or vanished card must never block the interpreter (pyalsaaudio holds
    the GIL while ``snd_pcm_open`` runs); the threads sleep in ``poll()`` instead."""
    import alsaaudio

    pcm_type = alsaaudio.PCM_CAPTURE if kind == "capture" else alsaaudio.PCM_PLAYBACK
    pcm: Pcm = alsaaudio.PCM(
        type=pcm_type,
        mode=alsaaudio.PCM_NONBLOCK,
        device=params.device,
        rate=params.rate,
        channels=params.channels,
        format=alsaaudio.PCM_FORMAT_S16_LE,
        periodsize=params.period_frames,
        periods=params.periods,
    )
    info = pcm.info()
    if info.get("rate") != params.rate or info.get("channels") != params.channels:
        # The device refused our shape (a hw: device without the plug layer): say so plainly.
        got = f"{info.get('rate')} Hz, {info.get('channels')} ch"
        pcm.close()
        raise DeviceError(
            f"{params.device} cannot do {params.rate} Hz, {params.channels} ch (offers {got}); "
            "use a plughw:/default device or change [audio] sample_rate/channels"
        )
    return pcm


def describe_error(exc: BaseException) -> str:
    text = (str(exc) or type(exc).__name__).splitlines()[0][:200]
    if re.fullmatch(r"No such file or directory \[.*\]", text):
        # pyalsaaudio's words for a PCM name or card this machine does not have
        return "no such device here (No such file or directory; rtedge devices lists the PCMs)"
    return text


def poller(pcm: Pcm) -> select.poll:
    """A ``poll`` object on the PCM's descriptors (the threads sleep in it, never spin)."""
    poll = select.poll()
    for fd, events in pcm.polldescriptors():
        poll.register(fd, events)
    return poll


__all__ = [
    "DeviceError",
    "OpenPcm",
    "Pcm",
    "PcmParams",
    "describe_error",
    "open_alsa_pcm",
    "poller",
]
