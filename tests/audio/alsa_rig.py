"""Real ALSA without a sound card: the ``file`` plugin over a ``null`` slave (see TESTING.md).

The parts (the PCM definitions, the mic feeder) are ``rtedge.audio.filedevices``, which
``rtedge demo`` uses. Each test writes its own asound.conf and points ``ALSA_CONFIG_PATH`` at it
(a fresh path is re-read by alsa-lib within one process; the same path edited is not). The
microphone is a FIFO fed in real time by a writer thread; the speaker is a raw file (or a FIFO
drained in real time). Devices live inside a directory so a test can make one vanish (rename
the directory away: open fails with ENOENT) and come back atomically (rename a fresh directory
in, its FIFO ends already held open, so alsa-lib never blocks opening them while holding the
GIL).
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from rtedge.audio.filedevices import MicFeeder, capture_pcm, playback_pcm, write_asound_conf
from tests.poll import until

Int16 = npt.NDArray[np.int16]

__all__ = ["AlsaRig", "FifoDrain", "MicFeeder", "feed_mic", "interleave", "sine"]


def sine(freq: float, seconds: float, rate: int, amplitude: float = 0.5) -> Int16:
    t = np.arange(int(seconds * rate)) / rate
    return (np.sin(2 * np.pi * freq * t) * amplitude * 32767).astype(np.int16)


def interleave(mono: Int16, channels: int) -> Int16:
    return np.repeat(mono, channels)


def feed_mic(feeder: MicFeeder, pcm: Int16) -> Coroutine[Any, Any, Any]:
    """Play ``pcm`` into the mic now; the result, awaited, waits until its last period is
    written: at the mic's pace, which a loaded machine slows (the feeder drops time rather than
    bursting), so a fixed sleep of the sound's length may let go of the button too early."""
    periods = -(-pcm.size // (feeder.period_frames * feeder.channels))
    start = feeder.periods_written
    feeder.play(pcm)
    return until(
        lambda: feeder.periods_written - start > periods,
        pcm.size / feeder.channels / feeder.rate + 10,
        "the sound fed into the mic",
    )


class FifoDrain:
    """Holds the read end of a FIFO that alsa-lib writes into, keeping everything read."""

    def __init__(self, fifo: Path) -> None:
        self.fd = os.open(fifo, os.O_RDWR)
        self.data = bytearray()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="fifo-drain")
        self._thread.start()

    def _run(self) -> None:
        import select

        poller = select.poll()
        poller.register(self.fd, select.POLLIN)
        while not self._stop.is_set():
            if not poller.poll(50):
                continue
            try:
                chunk = os.read(self.fd, 65536)
            except OSError:
                return
            if not chunk:
                return
            self.data.extend(chunk)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        with contextlib.suppress(OSError):
            os.close(self.fd)


class AlsaRig:
    """Writes the asound.conf for one test and owns its FIFOs and files."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.mic_dir = root / "mic"
        self.spk_dir = root / "spk"
        self.conf = root / "asound.conf"
        self._n = 0

    @property
    def mic_fifo(self) -> Path:
        return self.mic_dir / "mic.fifo"

    @property
    def mic_sink(self) -> Path:
        return self.mic_dir / "capture-copy.fifo"

    @property
    def spk_path(self) -> Path:
        return self.spk_dir / "spk.raw"

    def write_conf(self, *, capture_copy: bool = False, speaker_fifo: bool = False) -> Path:
        """Defines ``rtmic`` (capture) and ``rtspk`` (playback). ``capture_copy`` makes the
        plugin's copy of captured audio go to a FIFO (closing its reader fails the device);
        ``speaker_fifo`` makes the speaker a FIFO instead of a regular file."""
        copy = self.mic_sink if capture_copy else Path("/dev/null")
        spk = self.spk_dir / ("spk.fifo" if speaker_fifo else "spk.raw")
        write_asound_conf(
            self.conf,
            capture_pcm("rtmic", self.mic_fifo, copy=copy, description="rtedge test microphone"),
            playback_pcm("rtspk", spk, description="rtedge test speaker"),
            capture_pcm("rtbad", self.root / "nowhere" / "mic.fifo"),
            default=("rtmic", "rtspk"),
        )
        os.environ["ALSA_CONFIG_PATH"] = str(self.conf)
        return self.conf

    def make_mic(
        self, *, rate: int = 48000, channels: int = 1, capture_copy: bool = False
    ) -> tuple[MicFeeder, FifoDrain | None]:
        """Build the mic directory off to the side, hold its FIFOs open, then move it in.
        Returns the (not yet started) feeder and, with ``capture_copy``, the copy's drain."""
        self._n += 1
        staging = self.root / f"mic-staging-{self._n}"
        staging.mkdir()
        os.mkfifo(staging / "mic.fifo")
        drain = None
        if capture_copy:
            os.mkfifo(staging / "capture-copy.fifo")
            drain = FifoDrain(staging / "capture-copy.fifo")
        feeder = MicFeeder(staging / "mic.fifo", rate=rate, channels=channels)
        os.rename(staging, self.mic_dir)
        return feeder, drain

    def vanish_mic(self) -> None:
        self._n += 1
        os.rename(self.mic_dir, self.root / f"mic-gone-{self._n}")

    def make_speaker(self, *, fifo: bool = False) -> FifoDrain | None:
        self._n += 1
        staging = self.root / f"spk-staging-{self._n}"
        staging.mkdir()
        drain = None
        if fifo:
            os.mkfifo(staging / "spk.fifo")
            drain = FifoDrain(staging / "spk.fifo")
        os.rename(staging, self.spk_dir)
        return drain

    def vanish_speaker(self) -> None:
        self._n += 1
        os.rename(self.spk_dir, self.root / f"spk-gone-{self._n}")

    def speaker_samples(self) -> Int16:
        if not self.spk_path.exists():
            return np.zeros(0, dtype=np.int16)
        return np.frombuffer(self.spk_path.read_bytes(), dtype=np.int16)
