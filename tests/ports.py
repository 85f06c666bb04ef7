"""Loopback ports for tests, free and never handed to two tests of one run at once."""

from __future__ import annotations

import itertools
import os
import random
import socket

# Below Linux's ephemeral range (32768-60999): no client socket of any process takes one of
# these between our check and the server's bind. Each xdist worker ("gw0", "gw1", ...) has its
# own slice, so workers never pick the same port; within a slice ports are handed out in turn,
# so a port a test has just closed (maybe in TIME_WAIT) is not handed out again soon.
_BASE, _SLICE = 20000, 1500
_WORKER = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
_INDEX = int(_WORKER[2:]) if _WORKER[2:].isdigit() else 0
_START = _BASE + (_INDEX % 8) * _SLICE
# A random start: two runs side by side (two developers' suites on one machine) rarely overlap.
_NEXT = itertools.count(random.randrange(_SLICE))


def free_port() -> int:
    """A loopback TCP port nothing listens on now, from this worker's own slice."""
    for _ in range(_SLICE):
        port = _START + next(_NEXT) % _SLICE
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port in {_START}-{_START + _SLICE - 1}")
