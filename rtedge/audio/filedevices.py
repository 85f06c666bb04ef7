"""Devices made of files, for running with nothing attached (``rtedge demo``, tests, benches).

ALSA file-plugin PCMs (a FIFO mic fed in real time, a file speaker) and a file framebuffer:
what ``rtedge demo`` and ``rtedge check`` set up; the tests and benchmarks build theirs from the
same parts. Standard library and numpy only: ``scripts/bench_audio.py`` loads this file from its
own checkout whichever rtedge it measures.
"""

from __future__ import annotations

import contextlib
import os
import select
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType

import numpy as np
import numpy.typing as npt

RATE = 48000
DEMO_MIC = "rtedge_mic"
DEMO_SPEAKER = "rtedge_speaker"
ASOUND_MARK = "# written by rtedge demo"

Int16 = npt.NDArray[np.int16]


def _hint(description: str | None) -> str:
    return f'\n  hint {{ show on description "{description}" }}' if description else ""


def capture_pcm(
    name: str, infile: Path, *, copy: Path | str = "/dev/null", description: str | None = None
) -> str:
    """A capture PCM reading raw s16 from ``infile`` (a FIFO: the microphone); the plugin also
    writes what it captured to ``copy``."""
    return (
        f'pcm.{name} {{ type file slave.pcm {{ type null }} file "{copy}"\n'
        f'  infile "{infile}" format "raw"{_hint(description)} }}\n'
    )


def playback_pcm(name: str, file: Path, *, fmt: str = "raw", description: str | None = None) -> str:
    """A playback PCM writing to ``file`` (``raw`` or ``wav``; a regular file or a FIFO)."""
    return (
        f'pcm.{name} {{ type file slave.pcm {{ type null }} file "{file}" format "{fmt}"'
        f"{_hint(description)} }}\n"
    )


def write_asound_conf(
    path: Path,
    *pcms: str,
    default: tuple[str, str] | None = None,
    header: str = "",
) -> Path:
    """An ALSA config of ``pcms`` (and ``default`` as its ``(capture, playback)`` PCMs), for
    ``ALSA_CONFIG_PATH``. alsa-lib re-reads a fresh path within one process, not an edited one."""
    text = header + "".join(pcms)
    if default is not None:
        text += (
            f'pcm.!default {{ type asym capture.pcm "{default[0]}" playback.pcm "{default[1]}" }}\n'
        )
    path.write_text(text + "ctl.!default { type null }\n")
    return path


class MicFeeder:
    """Writes interleaved s16 into a FIFO one period per period, on an absolute schedule: what
    ``play`` queued, then silence (a live microphone in a quiet room).

    The FIFO is held open read-write, so opening it never blocks either side and the reader
    never sees an end while the feeder lives. Like a real mic, what is not taken while nobody
    reads is gone, rather than caught up in a burst."""

    def __init__(self, fifo: Path, *, rate: int = RATE, channels: int = 1, period_ms: int = 20):
        self.fifo = fifo
        self.rate = rate
        self.channels = channels
        self.period_frames = rate * period_ms // 1000
        self.period_s = period_ms / 1000
        self._data: Int16 = np.zeros(0, dtype=np.int16)
        self._pos = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.fd = os.open(fifo, os.O_RDWR)
        self.periods_written = 0
        self.data_started_at: float | None = None
        #: Set while queued audio is being fed; cleared the period after its last sample.
        self.speaking = threading.Event()

    def play(self, samples: Int16) -> None:
        """Queue interleaved samples to be fed next (replacing what is left)."""
        with self._lock:
            self._data = samples
            self._pos = 0
            self.data_started_at = None
            if samples.size:
                self.speaking.set()

    def start(self) -> MicFeeder:
        self._thread = threading.Thread(target=self._run, daemon=True, name="mic-feeder")
        self._thread.start()
        return self

    def _run(self) -> None:
        size = self.period_frames * self.channels
        poll = select.poll()
        poll.register(self.fd, select.POLLOUT)
        next_t = time.monotonic()
        while not self._stop.is_set():
            with self._lock:
                chunk = self._data[self._pos : self._pos + size]
                if chunk.size and self._pos == 0:
                    self.data_started_at = time.monotonic()
                self._pos += chunk.size
                if chunk.size == 0:
                    self.speaking.clear()
            if chunk.size < size:
                chunk = np.concatenate((chunk, np.zeros(size - chunk.size, dtype=np.int16)))
            # a full FIFO (nobody reading) is waited on a period at a time, so stop() is heard
            while not poll.poll(int(self.period_s * 1000)):
                if self._stop.is_set():
                    return
            try:
                os.write(self.fd, chunk.tobytes())
            except OSError:
                return
            self.periods_written += 1
            next_t += self.period_s
            now = time.monotonic()
            if now - next_t > 5 * self.period_s:
                next_t = now  # it was held up (a full FIFO, a loaded machine): no burst
            self._stop.wait(max(0.0, next_t - now))

    def stop(self) -> None:
        """End the thread and close the FIFO (its reader then sees the end of the stream)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(2)
        fd, self.fd = self.fd, -1
        if fd >= 0:  # once: a second close could hit a descriptor opened since
            with contextlib.suppress(OSError):
                os.close(fd)


class FileDevices:
    """``rtedge_mic`` (a FIFO fed by a ``MicFeeder``) and ``rtedge_speaker`` (a stereo WAV file)
    in ``workdir``, defined in ``workdir/asound.conf`` (also as ALSA's default)."""

    def __init__(self, workdir: Path) -> None:
        self.dir = workdir
        self.fifo = workdir / "mic.fifo"
        self.fifo.unlink(missing_ok=True)
        os.mkfifo(self.fifo)
        self.speaker = workdir / "speaker.wav"
        self.speaker.unlink(missing_ok=True)
        self.conf = write_asound_conf(
            workdir / "asound.conf",
            capture_pcm(
                DEMO_MIC,
                self.fifo,
                description="rtedge demo microphone (a FIFO fed by rtedge demo)",
            ),
            playback_pcm(
                DEMO_SPEAKER,
                self.speaker,
                fmt="wav",
                description="rtedge demo speaker (a WAV file)",
            ),
            default=(DEMO_MIC, DEMO_SPEAKER),
            header=f"{ASOUND_MARK}: these devices exist while it runs\n",
        )
        self.feeder = MicFeeder(self.fifo)

    def start(self) -> None:
        self.feeder.start()

    def stop(self) -> None:
        self.feeder.stop()

    def __enter__(self) -> FileDevices:
        self.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def speaker_pcm(self) -> npt.NDArray[np.float32]:
        """The left channel of what reached the speaker so far, as float32."""
        if not self.speaker.exists():
            return np.zeros(0, np.float32)
        data = np.frombuffer(self.speaker.read_bytes()[44:], dtype=np.int16)
        data = data[: data.size // 2 * 2].reshape(-1, 2)[:, 0]
        return data.astype(np.float32) / np.float32(32768)


@contextlib.contextmanager
def demo_devices(workdir: Path) -> Iterator[Path]:
    """The demo's microphone and speaker in ``workdir`` (the mic fed silence) for as long as the
    block runs; yields the ALSA config that defines them."""
    with FileDevices(workdir) as devices:
        yield devices.conf


def voiced_seconds(pcm: npt.NDArray[np.float32], threshold: float = 0.01) -> float:
    """Seconds of ``pcm`` (float mono, 48 kHz) whose 20 ms blocks are louder than ``threshold``."""
    chunk = RATE // 50
    frames = pcm[: pcm.size // chunk * chunk].reshape(-1, chunk)
    if frames.size == 0:
        return 0.0
    return float((np.sqrt((frames**2).mean(axis=1)) > threshold).sum()) * 0.02


def write_framebuffer(workdir: Path, width: int = 640, height: int = 480) -> Path:
    """A plain file as a 32 bpp framebuffer, with the sysfs attributes that describe it."""
    sysfs = workdir / "fb0-sysfs"
    sysfs.mkdir(exist_ok=True)
    (sysfs / "virtual_size").write_text(f"{width},{height}\n")
    (sysfs / "bits_per_pixel").write_text("32\n")
    (sysfs / "stride").write_text(f"{width * 4}\n")
    fb = workdir / "fb0"
    fb.write_bytes(bytes(width * height * 4))
    return fb


__all__ = [
    "ASOUND_MARK",
    "DEMO_MIC",
    "DEMO_SPEAKER",
    "FileDevices",
    "MicFeeder",
    "capture_pcm",
    "demo_devices",
    "playback_pcm",
    "voiced_seconds",
    "write_asound_conf",
    "write_framebuffer",
]
