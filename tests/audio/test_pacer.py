"""The device threads' pacer on a synthetic clock: it holds a device that never blocks to real
time, and leaves a device that keeps its own time alone (counted sleeps, no timing)."""

from __future__ import annotations

from rtedge.audio.worker import Pacer
from rtedge.timers import ManualTimers

RATE = 48000
PERIOD = 480  # the speaker's 10 ms period
AHEAD_S = 0.03  # what the playback loop allows: a two-period buffer plus a period


class Sleeps:
    """Stands in for the stop event: each wait moves the synthetic clock and is counted."""

    def __init__(self, clock: ManualTimers) -> None:
        self.clock = clock
        self.count = 0

    def wait(self, timeout: float | None = None) -> bool:
        self.count += 1
        self.clock.advance(timeout or 0.0)
        return False


class FifoSink:
    """The bench's speaker: the ``file`` plugin (it keeps one device buffer, two periods, and
    writes the rest to its FIFO at once) over a one-page pipe drained in real time. As in a pipe,
    a write that does not fit in the page's room waits until the reader freed the page: the
    writer is held up even while the pipe is not full."""

    PAGE = 1024  # frames of s16 stereo in a 4 KiB page

    def __init__(self, clock: ManualTimers) -> None:
        self.clock = clock
        self.primed = 0  # frames in the plugin's own buffer
        self.content = 0.0  # frames in the pipe
        self.page = 0  # frames written into the pipe's page since it was last freed
        self.at = clock.now

    def write(self, frames: int) -> float:
        """Frames in; returns how long the write held the caller up."""
        self.content = max(0.0, self.content - (self.clock.now - self.at) * RATE)
        self.at = self.clock.now
        if self.primed < 2 * PERIOD:
            self.primed += frames
            return 0.0
        wait = 0.0
        if self.content <= 0:
            self.page = 0
        if self.page + frames > self.PAGE:
            wait = self.content / RATE
            self.clock.advance(wait)
            self.at = self.clock.now
            self.content = 0.0
            self.page = 0
        self.content += frames
        self.page += frames
        return wait


def run_fifo_sink(periods: int) -> tuple[int, int]:
    """Periods written into a FIFO sink as the playback loop does: (pacer sleeps, writes the
    sink held up)."""
    clock = ManualTimers()
    sleeps = Sleeps(clock)
    pacer = Pacer(RATE, AHEAD_S, sleeps, now=clock)
    sink = FifoSink(clock)
    held_writes = 0
    for _ in range(periods):
        held = sink.write(PERIOD)
        held_writes += held > 0
        pacer.after(PERIOD, held_s=held)
    return sleeps.count, held_writes


def test_a_sink_that_keeps_its_own_time_is_not_paced_twice() -> None:
    # it lets the loop run ahead by up to two periods in the device and two in the pipe, just
    # over what the pacer allows: the sink alone must set the pace (a held write per page)
    sleeps, held = run_fifo_sink(1000)
    assert held >= 490
    assert sleeps <= 5  # only before the sink first held a write up


def test_a_sink_that_never_blocks_is_held_to_real_time() -> None:
    clock = ManualTimers()
    sleeps = Sleeps(clock)
    pacer = Pacer(RATE, AHEAD_S, sleeps, now=clock)
    start = clock.now
    written = 0
    for _ in range(1000):
        pacer.after(PERIOD)
        written += PERIOD
        lead = written / RATE - (clock.now - start)
        assert lead <= AHEAD_S + 1e-9
    assert sleeps.count >= 990  # one sleep per period, as a null sink needs
    assert written / RATE - (clock.now - start) >= AHEAD_S - PERIOD / RATE - 1e-9


def test_a_slow_write_lets_a_sink_that_never_blocks_run_ahead_a_bounded_while() -> None:
    # a write that was only slow (the GIL, a busy machine) looks like the device holding us up:
    # the allowance doubles for a while, never more, and the pace returns to real time
    clock = ManualTimers()
    sleeps = Sleeps(clock)
    pacer = Pacer(RATE, AHEAD_S, sleeps, now=clock)
    start = clock.now
    written = 0
    leads = []
    for k in range(1000):
        slow = 0.003 if k % 200 == 100 else 0.0
        clock.advance(slow)
        pacer.after(PERIOD, held_s=slow)
        written += PERIOD
        leads.append(written / RATE - (clock.now - start))
    assert max(leads) <= 2 * AHEAD_S + 1e-9
    assert leads[-1] <= AHEAD_S + 1e-9  # half a second after the last slow write
