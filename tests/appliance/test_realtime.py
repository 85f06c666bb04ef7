"""try_realtime(): only the calling (audio) thread goes SCHED_FIFO, and only when the service
manager granted an RLIMIT_RTPRIO (rtedge.service: LimitRTPRIO=20)."""

from __future__ import annotations

import os
import resource
import threading

import pytest

from rtedge.rtsched import try_realtime


def in_thread(fn: object) -> list[object]:
    out: list[object] = []

    def run() -> None:
        out.append(fn())  # type: ignore[operator]
        out.append(os.sched_getscheduler(0))
        out.append(os.sched_getparam(0).sched_priority)

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    return out


def test_no_grant_no_realtime(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(resource, "getrlimit", lambda _: (0, 0))
    assert in_thread(try_realtime) == [False, os.SCHED_OTHER, 0]


@pytest.mark.skipif(os.geteuid() != 0, reason="SCHED_FIFO beyond RLIMIT_RTPRIO needs root here")
def test_granted_realtime_is_the_calling_thread_only(monkeypatch: pytest.MonkeyPatch) -> None:
    # The hard RLIMIT_RTPRIO here is 0 and cannot be raised without CAP_SYS_RESOURCE, so the
    # grant is simulated; root's CAP_SYS_NICE lets the kernel accept the priority.
    monkeypatch.setattr(resource, "getrlimit", lambda _: (20, 20))
    assert in_thread(lambda: try_realtime(50)) == [True, os.SCHED_FIFO, 20]  # capped
    assert os.sched_getscheduler(0) == os.SCHED_OTHER  # this (main) thread is untouched
