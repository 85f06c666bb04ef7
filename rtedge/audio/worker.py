"""A device thread's life: open the PCM, stream, close and reopen with backoff on failure.

One thread per device. It sleeps in ``poll()`` on the device's descriptors, so it never
busy-polls. A device that does not pace itself (the ``null`` plugin, a regular file) is held to
the wall clock by ``Pacer``. Errors close the device and reopen it with exponential backoff;
status changes go to ``on_status`` (called on the worker thread: the owner crosses into asyncio
itself).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable
from typing import Protocol

from rtedge.audio.alsa import OpenPcm, Pcm, PcmParams, describe_error, open_alsa_pcm
from rtedge.backoff import Backoff
from rtedge.logs import event as log_event
from rtedge.media.dsp import Int16Array
from rtedge.rtsched import try_realtime

log = logging.getLogger(__name__)

StatusCallback = Callable[[bool, str], None]

AudioTrace = Callable[[str, Int16Array, int, float], None]
"""``(stage, samples, channels, time.monotonic())``, called on the device thread as each block
passes a stage (``capture.read``, ``capture.handed``, ``sink.pushed``, ``playback.take``,
``device.write``): the hook ``scripts/bench_audio.py`` times the audio path with."""


class Waiter(Protocol):
    """What the pacer sleeps on: ``threading.Event.wait`` (a stop request ends the sleep)."""

    def wait(self, timeout: float | None = None) -> bool: ...


class Pacer:
    """Keeps a worker from running ahead of the wall clock by more than ``ahead_s``.

    Real devices block or poll at their own clock; then the pacer only re-anchors and never
    sleeps. Devices that never block (``null``, files) are slowed to real time. Falling behind
    (a stall, an xrun) re-anchors instead of allowing a burst to catch up.

    A device that keeps time inside its own ``write`` (the ``file`` plugin writing to a FIFO
    someone drains in real time) says so by holding the caller up: ``after(held_s=...)``. For
    ``SELF_PACED_S`` after such a write the allowance is doubled. Why: such a device lets the
    worker run ahead by what its FIFO holds, which can be just over ``ahead_s``; then the pacer
    slept before every period and the device held up the next write as well (three wakeups per
    two 10 ms periods instead of one, and as many GIL hand-overs). The bound stays (twice
    ``ahead_s``), so a write that was only slow (the GIL, a loaded machine) lets a device that
    never blocks run a little further ahead for a while, never more and more.
    """

    #: A write that took longer than this waited for the device (non-blocking writes take
    #: microseconds; a FIFO drained in 5 ms steps holds one up for milliseconds).
    HELD_S = 0.002
    #: How long after the device last held up a write it counts as keeping time itself.
    SELF_PACED_S = 0.5

    def __init__(
        self,
        rate: int,
        ahead_s: float,
        stop: Waiter,
        *,
        now: Callable[[], float] = time.monotonic,
    ) -> None:
        self.rate = rate
        self.ahead_s = ahead_s
        self._stop = stop
        self._now = now
        self._t0: float | None = None
        self._frames = 0
        self._self_paced_until = float("-inf")

    def after(self, frames: int, *, held_s: float = 0.0) -> None:
        """``frames`` went to the device, whose write took ``held_s``: sleep while too far
        ahead."""
        now = self._now()
        if held_s > self.HELD_S:
            self._self_paced_until = now + self.SELF_PACED_S
        if self._t0 is None:
            self._t0 = now
            self._frames = 0
        self._frames += frames
        lead = self._frames / self.rate - (now - self._t0)
        ahead_s = self.ahead_s * 2 if now < self._self_paced_until else self.ahead_s
        if lead < -self.ahead_s:
            self._t0 = now - self._frames / self.rate
        elif lead > ahead_s:
            self._stop.wait(lead - ahead_s)

    def reset(self) -> None:
        self._t0 = None


class DeviceWorker:
    """The thread, the open/reopen loop and the status reports; subclasses stream."""

    kind = "device"

    def __init__(
        self,
        params: PcmParams,
        *,
        on_status: StatusCallback,
        reopen_initial_s: float,
        reopen_max_s: float,
        open_pcm: OpenPcm | None = None,
    ) -> None:
        self.params = params
        self._on_status = on_status
        self._open_pcm = open_pcm or open_alsa_pcm
        self._backoff = Backoff(reopen_initial_s, reopen_max_s)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.ok = False
        self._reported_missing = False
        self.last_beat = time.monotonic()  # progress mark for the systemd watchdog
        self.opens = 0
        self.failures = 0
        self.xruns = 0
        #: Timestamps each block on this thread (benchmarks); None costs one test per period.
        self.trace: AudioTrace | None = None

    @property
    def period_s(self) -> float:
        return self.params.period_frames / self.params.rate

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=f"rtedge-{self.kind}", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 1.0) -> bool:
        """Ask the thread to finish; True when it did within ``timeout``."""
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is None:
            return True
        thread.join(timeout)
        if thread.is_alive():
            log.warning(
                "%s thread did not finish within %.1fs (blocked in the driver)", self.kind, timeout
            )
            return False
        return True

    def _status(self, ok: bool, detail: str) -> None:
        self.ok = ok
        try:
            self._on_status(ok, detail)
        except Exception:  # a status listener must never kill the audio thread
            log.exception("%s status callback failed", self.kind)

    def _run(self) -> None:
        if try_realtime():
            log.info("%s thread runs SCHED_FIFO (the service's LimitRTPRIO)", self.kind)
        while not self._stop.is_set():
            try:
                pcm = self._open_pcm(self.kind, self.params)
            except Exception as exc:  # ALSAAudioError, OSError, DeviceError
                self._failed(exc, "%s device unavailable: %s")
                self._idle(self._backoff.next_delay())
                continue
            self.opens += 1
            try:
                self._stream(pcm)
            except Exception as exc:
                self._failed(exc, "%s device failed: %s; reopening")
            finally:
                self._close(pcm)
            if not self._stop.is_set():
                self._idle(self._backoff.next_delay())

    def _failed(self, exc: BaseException, message: str) -> None:
        """Count a failure, log it once per outage (retries come every few seconds), report it."""
        self.failures += 1
        reason = f"{self.params.device}: {describe_error(exc)}"
        if not self._reported_missing:
            log_event(
                log,
                logging.WARNING,
                "device_error",
                message,
                self.kind,
                reason,
                device=self.params.device,
                direction=self.kind,
            )
            self._reported_missing = True
        self._status(False, reason)

    def _streaming(self) -> None:
        """The first period moved: the device works (some plugins only fail on first I/O)."""
        self._backoff.reset()
        self._reported_missing = False
        log.info("%s device streaming: %s", self.kind, self._describe())
        self._status(True, self._describe())

    def _describe(self) -> str:
        p = self.params
        return f"{p.device} {p.rate} Hz {p.channels} ch"

    def beat(self) -> float:
        """``time.monotonic()`` of the thread's last sign of life (a period moved, a retry)."""
        return self.last_beat

    def _idle(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while not self._stop.is_set():
            self.last_beat = now = time.monotonic()
            if now >= deadline:
                return
            self._stop.wait(min(0.5, deadline - now))

    def _close(self, pcm: Pcm) -> None:
        with contextlib.suppress(Exception):
            pcm.close()

    def _stream(self, pcm: Pcm) -> None:
        raise NotImplementedError


__all__ = ["AudioTrace", "DeviceWorker", "Pacer", "StatusCallback", "Waiter"]
