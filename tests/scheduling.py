"""The scheduling rtedge.service gives the daemon (``Nice=``, ``LimitRTPRIO=``, ``LimitRTTIME=``),
applied to a test that judges media quality in real time, where the test runner may grant it.

On a device the daemon runs ahead of ordinary processes (``Nice=-5``) and lifts its ALSA threads
to SCHED_FIFO (``rtedge.rtsched``): that is how its audio and frames keep time on a busy Pi.
A test of that timing beside two busy loops at normal priority measures the device only when
it runs as the device does; without this it measured the machine (a reply matched at 0.65,
frames shown late). The values are read from the unit itself, so the tests follow it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import resource
from collections.abc import Iterator
from dataclasses import dataclass

from tests.appliance.sandbox import UNIT, unit_values

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class UnitScheduling:
    nice: int
    rtprio: int
    rttime_us: tuple[int, int]  # soft, hard


def _microseconds(value: str) -> int:
    match = re.fullmatch(r"(\d+)(us|ms|s)?", value.strip())
    if match is None:
        raise ValueError(f"{UNIT.name}: LimitRTTIME value {value!r} is not a time span")
    scale = {"us": 1, "ms": 1000, "s": 1_000_000, None: 1}[match.group(2)]
    return int(match.group(1)) * scale


def unit_scheduling(text: str | None = None) -> UnitScheduling:
    """Nice, LimitRTPRIO and LimitRTTIME as rtedge.service (or ``text``) sets them."""

    def setting(name: str) -> str:
        values = unit_values(name, text)
        if not values:
            raise ValueError(f"{UNIT.name} sets no {name}=")
        return values[-1]  # as systemd reads it: the last one wins

    soft, _, hard = setting("LimitRTTIME").partition(":")
    return UnitScheduling(
        nice=int(setting("Nice")),
        rtprio=int(setting("LimitRTPRIO")),
        rttime_us=(_microseconds(soft), _microseconds(hard or soft)),
    )


def _threads() -> list[int]:
    return [int(tid) for tid in os.listdir("/proc/self/task")]


@dataclass
class Granted:
    """What the test runner was allowed to apply: the nice level needs CAP_SYS_NICE (root has
    it), raising the real-time limits CAP_SYS_RESOURCE (a container may withhold it: then the
    ALSA threads stay SCHED_OTHER, as on a system without the unit's limits)."""

    nice: bool = False
    realtime: bool = False


@contextlib.contextmanager
def as_the_service_runs() -> Iterator[Granted]:
    """This process's threads (and the threads and processes they start) at the unit's nice
    level, with its real-time limits, as far as granted; restored afterwards."""
    wanted = unit_scheduling()
    limits = {
        resource.RLIMIT_RTPRIO: (wanted.rtprio, wanted.rtprio),
        resource.RLIMIT_RTTIME: wanted.rttime_us,
    }
    base = os.getpriority(os.PRIO_PROCESS, 0)  # this thread's: what threads started later had
    before_nice = {tid: os.getpriority(os.PRIO_PROCESS, tid) for tid in _threads()}
    before_limits = {which: resource.getrlimit(which) for which in limits}
    granted = Granted()
    try:
        for which, value in limits.items():
            resource.setrlimit(which, value)
        granted.realtime = True
    except (OSError, ValueError) as exc:
        log.info("media test without the service's real-time limits: %s", exc)
    try:
        # per thread: on Linux a nice value belongs to a thread, and new ones inherit it
        for tid in before_nice:
            os.setpriority(os.PRIO_PROCESS, tid, wanted.nice)
        granted.nice = True
    except OSError as exc:
        log.info("media test without the service's nice level: %s", exc)
    try:
        yield granted
    finally:
        for tid in _threads():  # a thread that ended meanwhile is simply gone
            with contextlib.suppress(OSError):
                os.setpriority(os.PRIO_PROCESS, tid, before_nice.get(tid, base))
        for which, value in before_limits.items():
            with contextlib.suppress(OSError, ValueError):
                resource.setrlimit(which, value)


__all__ = ["UNIT", "Granted", "UnitScheduling", "as_the_service_runs", "unit_scheduling"]
