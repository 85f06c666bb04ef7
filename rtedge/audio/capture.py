"""The microphone thread: reads the capture device, converts once, hands out fixed periods."""

from __future__ import annotations

import errno
import time
from collections.abc import Callable

import numpy as np

from rtedge.audio.alsa import DeviceError, OpenPcm, Pcm, PcmParams, poller
from rtedge.audio.worker import DeviceWorker, Pacer, StatusCallback
from rtedge.media.dsp import Converter, Int16Array, Rechunker, rms


class CaptureWorker(DeviceWorker):
    """Reads the microphone, converts it once to ``out_rate``/mono and hands out fixed periods.

    ``on_period(samples, level)`` gets interleaved s16 mono chunks of ``out_frames`` frames, on
    the capture thread.
    """

    kind = "capture"

    def __init__(
        self,
        params: PcmParams,
        *,
        on_period: Callable[[Int16Array, float], None],
        on_status: StatusCallback,
        out_rate: int,
        out_frames: int,
        reopen_initial_s: float,
        reopen_max_s: float,
        stall_s: float = 2.0,
        max_burst_s: float = 1.0,
        open_pcm: OpenPcm | None = None,
    ) -> None:
        super().__init__(
            params,
            on_status=on_status,
            reopen_initial_s=reopen_initial_s,
            reopen_max_s=reopen_max_s,
            open_pcm=open_pcm,
        )
        self._on_period = on_period
        self.out_rate = out_rate
        self.out_frames = out_frames
        self.stall_s = stall_s
        self.max_burst_s = max_burst_s
        self.periods_read = 0
        self.frames_read = 0

    def _stream(self, pcm: Pcm) -> None:
        p = self.params
        poll = poller(pcm)
        converter = Converter(p.rate, p.channels, self.out_rate, 1)
        rechunker = Rechunker(self.out_frames, 1)
        # A backlog (the ring, or a FIFO that filled while we were not reading) is read at
        # once, so latency drops back; only a source that runs away for longer than
        # max_burst_s (EOF on a FIFO, a regular file) is held to real time.
        pacer = Pacer(p.rate, max(self.max_burst_s, p.periods * self.period_s), self._stop)
        timeout_ms = max(1, int(self.period_s * 2000))
        last_data = time.monotonic()
        empty_reads = 0
        first = True
        while not self._stop.is_set():
            self.last_beat = time.monotonic()
            if not poll.poll(timeout_ms):
                if time.monotonic() - last_data > self.stall_s:
                    raise DeviceError(f"no audio for {self.stall_s:.1f}s")
                continue
            n, data = pcm.read()
            if n == -errno.EPIPE:
                self.xruns += 1  # overrun: pyalsaaudio already re-prepared the stream
                continue
            if n <= 0:
                empty_reads += 1
                if empty_reads > 2:  # ready but nothing to read: do not spin
                    self._stop.wait(self.period_s / 4)
                if time.monotonic() - last_data > self.stall_s:
                    raise DeviceError(f"no audio for {self.stall_s:.1f}s")
                continue
            empty_reads = 0
            last_data = time.monotonic()
            if first:
                self._streaming()
                first = False
            self.frames_read += n
            samples = np.frombuffer(data, dtype=np.int16)
            trace = self.trace
            if trace is not None:
                trace("capture.read", samples, p.channels, last_data)
            for chunk in rechunker.push(converter.convert(samples)):
                self.periods_read += 1
                if trace is not None:
                    trace("capture.handed", chunk, 1, time.monotonic())
                self._on_period(chunk, rms(chunk))
            pacer.after(n)


__all__ = ["CaptureWorker"]
