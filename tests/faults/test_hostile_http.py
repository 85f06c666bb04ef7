"""Hostile local HTTP clients against the real daemon (issue 14, rows 5 and 10): a slowloris
flood of 1020 half-sent requests under ``LimitNOFILE=1024`` (set on the live process with
``prlimit``), and a burst of malformed requests. The call stays the same call, ``/healthz``
keeps answering, fds and RSS come back, and the log gets a few lines, not tracebacks."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Callable

import pytest

from tests.faults.rig import FaultDaemon
from tests.faults.test_call_faults import one_turn, warm_up
from tests.support import Peer, http

PeerFactory = Callable[..., Peer]
FaultDaemonFactory = Callable[..., FaultDaemon]

HEAD_TIMEOUT_S = 2.0
MAX_CONNECTIONS = 64


@pytest.fixture
def live(peer_factory: PeerFactory, fault_daemon: FaultDaemonFactory) -> tuple[Peer, FaultDaemon]:
    peer = peer_factory()
    daemon = fault_daemon(
        peer.calls_url,
        config={"health": {"header_timeout_s": HEAD_TIMEOUT_S, "max_connections": MAX_CONNECTIONS}},
    )
    warm_up(peer, daemon)
    return peer, daemon


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


# hundreds of connections opened as fast as they go (tests/conftest.py: heavy)
@pytest.mark.heavy
@pytest.mark.skipif(shutil.which("prlimit") is None, reason="prlimit (util-linux) missing")
def test_slowloris_flood_leaves_the_call_and_fds(live: tuple[Peer, FaultDaemon]) -> None:
    peer, daemon = live
    before = daemon.baseline()
    assert daemon.watch is not None
    subprocess.run(["prlimit", f"--pid={daemon.pid}", "--nofile=1024:1024"], check=True)
    call_id = daemon.call_id()
    host, port = "127.0.0.1", daemon.port
    t0 = time.monotonic()
    attackers: list[socket.socket] = []
    max_fds = 0
    try:
        for i in range(1020):
            s = socket.socket()
            s.setblocking(False)
            s.connect_ex((host, port))
            attackers.append(s)
            if i % 50 == 49:
                time.sleep(0.05)  # paced: the flood is the test's input
                for a in attackers[-50:]:
                    with contextlib.suppress(OSError):  # already evicted
                        a.send(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-a: ")
                max_fds = max(max_fds, open_fds(daemon.pid))
        # The flood is in: a whole request still gets an answer, the call is still up.
        code, body = http("GET", f"{daemon.url}/healthz", timeout=5)
        during = (code, body)
        max_fds = max(max_fds, open_fds(daemon.pid))
        # Keep the flood up past the head timeout: the daemon drops those connections itself.
        time.sleep(HEAD_TIMEOUT_S + 1.0)  # the flood held up: the test's input
        held_open = open_fds(daemon.pid)
    finally:
        for s in attackers:
            s.close()
    elapsed = time.monotonic() - t0
    assert during[0] == 200 and isinstance(during[1], dict), during
    assert during[1]["call_id"] == call_id
    assert daemon.call_id() == call_id
    print(
        f"\nSLOWLORIS 1020 half-sent requests over {elapsed:.1f}s: daemon fds "
        f"{before.fds} -> peak {max_fds} -> {held_open} while the flood stayed open; "
        f"/healthz during: {during[0]}"
    )
    assert max_fds <= before.fds + MAX_CONNECTIONS + 110, max_fds  # accept batches in flight
    assert held_open <= before.fds + 8, held_open  # timed out: closed by the daemon
    assert "Too many open files" not in daemon.log()
    one_turn(daemon)
    d = daemon.assert_no_leak(before)
    print(f"SLOWLORIS after: {d}")


def test_malformed_requests_give_a_few_lines_not_tracebacks(
    live: tuple[Peer, FaultDaemon],
) -> None:
    peer, daemon = live
    call_id = daemon.call_id()
    log0 = len(daemon.log())
    garbage = [
        b"GARBAGE\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: abc\r\n\r\n",
        b"GET /" + b"a" * 10000 + b" HTTP/1.1\r\n\r\n",
        b"POST /ptt/press HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: bogus\r\n\r\n",
    ]
    answers = []
    for i in range(200):
        with socket.create_connection(("127.0.0.1", daemon.port), timeout=5) as s:
            s.sendall(garbage[i % len(garbage)])
            answers.append(s.recv(64)[:12])
    time.sleep(0.5)  # a window for late log lines (none may be a traceback)
    new_log = daemon.log()[log0:]
    lines = [ln for ln in new_log.splitlines() if "aiohttp.server" in ln or "Traceback" in ln]
    print(f"\nMALFORMED 200 requests -> {len(lines)} log lines, {len(new_log)} bytes of log")
    assert all(a.startswith(b"HTTP/1.") for a in answers)
    assert "Traceback" not in new_log
    assert len(lines) <= 10, lines
    assert not daemon.status()["ptt_held"]
    assert daemon.call_id() == call_id
