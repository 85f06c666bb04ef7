"""What ``rtedge devices`` and ``rtedge check`` show: ALSA PCMs, cards, and a one-shot probe of
the configured microphone and speaker."""

from __future__ import annotations

import contextlib
import errno
import functools
import os
import pickle
import select
import signal
import time
from collections.abc import Callable
from typing import Literal, TypeVar, cast

from rtedge.audio.alsa import (
    DeviceError,
    OpenPcm,
    Pcm,
    PcmParams,
    describe_error,
    open_alsa_pcm,
    poller,
)
from rtedge.audio.alsalib import pcm_hints
from rtedge.settings import AudioSettings

T = TypeVar("T")


def list_pcms(kind: Literal["playback", "capture"] | None = None) -> list[str]:
    """PCM names ALSA advertises (``aplay -L`` / ``arecord -L``); both kinds when ``kind`` is
    None. Names defined only in a config file without a hint are usable but not listed."""
    return [h.name for h in pcm_hints() if kind is None or getattr(h, kind)]


def describe_pcms(indent: str = "  ", hints_timeout_s: float = 3.0) -> list[str]:
    """The PCMs as ``aplay -L`` shows them, a name then its description, for a person: the
    only one on a machine without a sound card is ``null``, which reads as "nothing found"
    unless its description says what it is."""
    found = bounded(pcm_hints, hints_timeout_s)  # listing opens some PCMs to learn about them
    if found is None:
        return [f"{indent}(none listed: {_blocked(hints_timeout_s)})"]
    hints = found
    if not hints:
        return [
            f"{indent}(none advertised; a PCM defined without a hint, like rtedge demo's, "
            "still works by its name)"
        ]
    lines: list[str] = []
    for hint in hints:
        only = {"Input": " (capture only)", "Output": " (playback only)"}.get(
            hint.direction or "", ""
        )
        lines.append(f"{indent}{hint.name}{only}")
        lines.extend(f"{indent}    {text}" for text in hint.description.splitlines())
    if [h.name for h in hints] == ["null"] and not list_cards():
        lines.append(
            f"{indent}(no sound card found: null is ALSA's stand-in that discards what is "
            "played and records silence)"
        )
    return lines


def list_cards() -> list[str]:
    """Sound cards as ``"<index>: <id> (<name>)"``, e.g. ``"1: Device (USB PnP Sound Device)"``."""
    import alsaaudio

    out: list[str] = []
    try:
        indexes = alsaaudio.card_indexes()
    except alsaaudio.ALSAAudioError:
        return out
    for idx in indexes:
        try:
            card_id, name = alsaaudio.card_name(idx)
        except alsaaudio.ALSAAudioError:
            card_id, name = "?", "?"
        out.append(f"{idx}: {card_id} ({name})")
    return out


def probe(
    settings: AudioSettings,
    *,
    open_pcm: OpenPcm | None = None,
    timeout_s: float = 1.0,
    open_timeout_s: float = 2.0,
) -> dict[str, str]:
    """Open the configured capture and playback devices once, move one period through each,
    close them, and say how it went: ``{"capture": "ok: ...", "playback": "error: ..."}``."""
    opener = open_pcm or open_alsa_pcm
    rate = settings.sample_rate
    period = rate * settings.period_ms // 1000
    playback_period = rate * settings.playback_period_ms // 1000
    results: dict[str, str] = {}
    jobs = (
        ("capture", PcmParams(settings.capture_device, rate, settings.channels, period, 4)),
        (
            "playback",
            PcmParams(
                settings.playback_device, rate, settings.playback_channels, playback_period, 2
            ),
        ),
    )
    for kind, params in jobs:
        shape = f"{params.device}, {params.rate} Hz, {params.channels} ch"
        # A device can block in its open for good (a file plugin whose FIFO has no writer), so
        # each probe runs on its own thread and is given up after open_timeout_s.
        limit = open_timeout_s + timeout_s
        result = bounded(functools.partial(_probe_one, kind, params, opener, timeout_s), limit)
        results[kind] = result if result is not None else f"error: {shape}: {_blocked(limit)}"
    return results


def bounded(fn: Callable[[], T], timeout_s: float) -> T | None:
    """``fn()`` in a forked child, or None when it has not answered within ``timeout_s`` (the
    child is then killed). Not a thread: pyalsaaudio holds the GIL while ALSA opens a device,
    and a blocked open (a file plugin's FIFO with no writer) cannot be interrupted."""
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: run, send the pickled result, leave without any cleanup
        try:
            os.close(read_fd)
            with os.fdopen(write_fd, "wb") as out:
                pickle.dump(fn(), out)
        finally:
            os._exit(0)
    os.close(write_fd)
    try:
        with os.fdopen(read_fd, "rb") as answer:
            if not select.select([answer], [], [], timeout_s)[0]:
                return None
            data = answer.read()  # the child writes it all at once, then exits
        return cast(T, pickle.loads(data)) if data else None
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)


def _blocked(limit: float) -> str:
    return (
        f"no answer within {limit:.0f} s (a device that blocks when opened, such as a file "
        "plugin whose FIFO has no writer?)"
    )


def _probe_one(kind: str, params: PcmParams, opener: OpenPcm, timeout_s: float) -> str:
    shape = f"{params.device}, {params.rate} Hz, {params.channels} ch"
    try:
        pcm = opener(kind, params)
    except Exception as exc:
        return f"error: {shape}: {describe_error(exc)}"
    try:
        _one_period(kind, pcm, params, timeout_s)
        info = pcm.info()
        return (
            f"ok: {shape}, period {info.get('period_size')} frames, "
            f"buffer {info.get('buffer_size')} frames"
        )
    except Exception as exc:
        return f"error: {shape}: {describe_error(exc)}"
    finally:
        try:
            if kind == "playback":
                pcm.drop()
            pcm.close()
        except Exception:
            pass


def _one_period(kind: str, pcm: Pcm, params: PcmParams, timeout_s: float) -> None:
    poll = poller(pcm)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        poll.poll(int(timeout_s * 1000))
        if kind == "capture":
            n, _ = pcm.read()
        else:
            silence = bytes(params.period_frames * params.channels * 2)
            n = pcm.write(silence)
        if n > 0 or n == -errno.EPIPE:
            return
    raise DeviceError(f"no {'audio' if kind == 'capture' else 'progress'} in {timeout_s:.1f}s")


__all__ = ["describe_pcms", "list_cards", "list_pcms", "probe"]
