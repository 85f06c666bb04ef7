"""What ``rtedge devices`` and ``rtedge check`` show: ALSA PCMs, cards, and a one-shot probe of
the configured microphone and speaker."""

from __future__ import annotations

import errno
import select
import time
from typing import Literal

from rtedge.audio.alsa import (
    DeviceError,
    OpenPcm,
    Pcm,
    PcmParams,
    describe_error,
    open_alsa_pcm,
)
from rtedge.settings import AudioSettings


def list_pcms(kind: Literal["playback", "capture"] | None = None) -> list[str]:
    """PCM names ALSA advertises (``aplay -L`` / ``arecord -L``); both kinds when ``kind`` is
    None. Names defined only in a config file without a hint are usable but not listed."""
    import alsaaudio

    kinds = [kind] if kind else ["capture", "playback"]
    names: list[str] = []
    for k in kinds:
        pcm_type = alsaaudio.PCM_CAPTURE if k == "capture" else alsaaudio.PCM_PLAYBACK
        try:
            found = alsaaudio.pcms(pcm_type)
        except alsaaudio.ALSAAudioError:
            continue
        names.extend(n for n in found if n not in names)
    return names


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
    settings: AudioSettings, *, open_pcm: OpenPcm | None = None, timeout_s: float = 1.0
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
        try:
            pcm = opener(kind, params)
        except Exception as exc:
            results[kind] = f"error: {shape}: {describe_error(exc)}"
            continue
        try:
            _one_period(kind, pcm, params, timeout_s)
            info = pcm.info()
            results[kind] = (
                f"ok: {shape}, period {info.get('period_size')} frames, "
                f"buffer {info.get('buffer_size')} frames"
            )
        except Exception as exc:
            results[kind] = f"error: {shape}: {describe_error(exc)}"
        finally:
            try:
                if kind == "playback":
                    pcm.drop()
                pcm.close()
            except Exception:
                pass
    return results


def _one_period(kind: str, pcm: Pcm, params: PcmParams, timeout_s: float) -> None:
    poller = select.poll()
    for fd, events in pcm.polldescriptors():
        poller.register(fd, events)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        poller.poll(int(timeout_s * 1000))
        if kind == "capture":
            n, _ = pcm.read()
        else:
            silence = bytes(params.period_frames * params.channels * 2)
            n = pcm.write(silence)
        if n > 0 or n == -errno.EPIPE:
            return
    raise DeviceError(f"no {'audio' if kind == 'capture' else 'progress'} in {timeout_s:.1f}s")


__all__ = ["list_cards", "list_pcms", "probe"]
