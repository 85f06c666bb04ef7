"""The media tests' scheduling (``tests.scheduling``) is the unit's, and really applied."""

from __future__ import annotations

import os
import resource
import threading

import pytest

from rtedge.rtsched import try_realtime
from tests.scheduling import UnitScheduling, as_the_service_runs, unit_scheduling


def test_read_from_the_unit() -> None:
    text = "[Service]\nNice=-7\nLimitRTPRIO=15\nLimitRTTIME=150ms:1s\n"
    assert unit_scheduling(text) == UnitScheduling(-7, 15, (150_000, 1_000_000))
    shipped = unit_scheduling()
    assert shipped.nice < 0 and shipped.rtprio > 0  # what the media tests rely on
    with pytest.raises(ValueError, match="sets no Nice="):
        unit_scheduling("[Service]\nLimitRTPRIO=20\nLimitRTTIME=1s\n")


def test_threads_run_as_the_service_then_as_before() -> None:
    wanted = unit_scheduling()
    before = os.getpriority(os.PRIO_PROCESS, 0)
    limit_before = resource.getrlimit(resource.RLIMIT_RTPRIO)
    seen: dict[str, object] = {}

    def audio_thread() -> None:  # as an ALSA worker starts
        seen["nice"] = os.getpriority(os.PRIO_PROCESS, 0)
        seen["realtime"] = try_realtime()
        seen["policy"] = os.sched_getscheduler(0)

    with as_the_service_runs() as granted:
        if not granted.nice:
            pytest.skip("the nice level is not permitted here (needs CAP_SYS_NICE, as root)")
        assert os.getpriority(os.PRIO_PROCESS, 0) == wanted.nice
        t = threading.Thread(target=audio_thread)
        t.start()
        t.join()
    assert seen["nice"] == wanted.nice
    if granted.realtime:  # CAP_SYS_RESOURCE: the ALSA threads go SCHED_FIFO as on the device
        assert (seen["realtime"], seen["policy"]) == (True, os.SCHED_FIFO)
    else:  # withheld (this container): they stay SCHED_OTHER, as the product does then
        assert (seen["realtime"], seen["policy"]) == (False, os.SCHED_OTHER)
    assert os.getpriority(os.PRIO_PROCESS, 0) == before
    assert resource.getrlimit(resource.RLIMIT_RTPRIO) == limit_before
