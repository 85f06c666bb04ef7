"""Real-time scheduling for the calling thread, where the service manager grants it."""

from __future__ import annotations

import os
import resource


def try_realtime(priority: int = 10) -> bool:
    """Lift the calling thread (an ALSA capture or playback thread) to SCHED_FIFO.

    Only when the service manager granted it: rtedge.service sets ``LimitRTPRIO=20`` (no
    capability needed) and ``LimitRTTIME=200ms:500ms``, which kills a real-time thread that spins
    without blocking. Anywhere else (RLIMIT_RTPRIO 0, even as root) the thread stays SCHED_OTHER.
    Only the calling thread changes: the event loop never runs real-time.
    """
    try:
        limit = resource.getrlimit(resource.RLIMIT_RTPRIO)[0]
        if limit == 0:
            return False
        if limit != resource.RLIM_INFINITY:
            priority = min(priority, int(limit))
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(priority))
    except (OSError, AttributeError, ValueError):
        return False
    return True


__all__ = ["try_realtime"]
