"""The test as systemd: it starts the real ``rtedge run`` (python -m rtedge) with NOTIFY_SOCKET on
an AF_UNIX datagram socket it bound and WATCHDOG_USEC set, reads READY=1, STATUS=, the periodic
WATCHDOG=1, sees the pings stop while the event loop is frozen (RTEDGE_TEST_HOOKS stall), and
sees STOPPING=1 and exit 0 within 5 s of SIGTERM; a config error exits 78 with one line.
The service URL is a closed loopback port: READY=1 must come without any connection."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("rtedge.audio.pipeline", reason="rtedge run needs the audio part merged")

from rtedge.cli import EX_CONFIG  # noqa: E402
from tests.appliance.journal_rig import JournalSocket, namespaces_work  # noqa: E402
from tests.support import Daemon, NotifySocket, Proc, free_port, http, wait_for  # noqa: E402

WATCHDOG_USEC = 1_000_000  # pings every 0.5 s


@pytest.fixture
def notify(tmp_path: Path) -> Iterator[NotifySocket]:
    sock = NotifySocket(tmp_path / "notify.sock")
    yield sock
    sock.close()


def closed_url() -> str:
    return f"http://127.0.0.1:{free_port()}/v1/realtime/calls"  # nothing listens there


def make_daemon(tmp_path: Path, notify: NotifySocket, **kw: Any) -> Daemon:
    work = tmp_path / "daemon"
    work.mkdir()
    env = {"NOTIFY_SOCKET": str(notify.path), "WATCHDOG_USEC": str(WATCHDOG_USEC)}
    return Daemon(work, closed_url(), env=env, **kw)


def pings(notify: NotifySocket, after: float = 0.0, before: float = float("inf")) -> list[float]:
    return [t for t, _ in notify.lines("WATCHDOG=1") if after < t < before]


def test_notify_protocol_watchdog_and_stop(tmp_path: Path, notify: NotifySocket) -> None:
    daemon = make_daemon(tmp_path, notify)
    daemon.start(wait_healthy=False)
    assert daemon.proc is not None
    try:
        wait_for(lambda: notify.lines("READY=1"), 30, "READY=1")
        t_ready = notify.lines("READY=1")[0][0]
        # Ready means up and supervising, not connected: a device boots with the network down.
        assert http("GET", f"{daemon.url}/readyz")[0] == 200
        assert daemon.healthz()[0] == 503
        assert notify.lines("STATUS=") and notify.lines("STATUS=")[0][0] >= t_ready
        wait_for(lambda: len({m for _, m in notify.lines("STATUS=")}) >= 2, 15, "a STATUS= change")
        assert not any("test-key" in m for _, m in notify.messages)  # no secret in a status

        wait_for(lambda: len(pings(notify, t_ready)) >= 4, 5, "periodic WATCHDOG=1")
        beats = pings(notify, t_ready)
        gaps = [b - a for a, b in zip(beats, beats[1:], strict=False)]
        assert all(0.3 < g < 0.8 for g in gaps), gaps  # WATCHDOG_USEC / 2

        # Freeze the event loop for 3 s: no ping may come while it is frozen.
        result: list[tuple[int, Any]] = []
        t_stall = time.monotonic()
        stall = threading.Thread(
            target=lambda: result.append(http("POST", f"{daemon.url}/_test/stall?s=3", timeout=15))
        )
        stall.start()
        stall.join(15)
        t_back = time.monotonic()
        assert result and result[0][0] == 200, result
        assert t_back - t_stall >= 3
        assert pings(notify, t_stall + 0.25, t_stall + 2.9) == []
        wait_for(lambda: len(pings(notify, t_back)) >= 2, 3, "pings to resume after the stall")
        around = pings(notify, t_stall - 1.0)
        widest = max(b - a for a, b in zip(around, around[1:], strict=False))
        assert widest > WATCHDOG_USEC / 1e6 * 2, around  # systemd would have killed it
        assert daemon.proc.alive()

        t_term = time.monotonic()
        daemon.proc.proc.send_signal(signal.SIGTERM)
        code = daemon.proc.proc.wait(timeout=5)
        elapsed = time.monotonic() - t_term
        assert code == 0 and elapsed < 5, (code, elapsed, daemon.log()[-2000:])
        assert [t for t, _ in notify.lines("STOPPING=1") if t >= t_term]
    finally:
        daemon.alsa.stop()
        if daemon.proc is not None:
            daemon.proc.kill()


def test_watchdog_off_without_watchdog_usec(tmp_path: Path, notify: NotifySocket) -> None:
    # WATCHDOG_PID naming another process means the watchdog is not ours: no pings.
    daemon = make_daemon(tmp_path, notify)
    daemon.env["WATCHDOG_PID"] = "1"
    daemon.start(wait_healthy=False)
    try:
        wait_for(lambda: notify.lines("READY=1"), 30, "READY=1")
        time.sleep(1.2)  # a window in which no ping may come: the test's input
        assert notify.lines("WATCHDOG=1") == []
    finally:
        daemon.alsa.stop()
        if daemon.proc is not None:
            daemon.proc.kill()


def test_config_error_exits_78_with_one_line(tmp_path: Path, notify: NotifySocket) -> None:
    daemon = make_daemon(tmp_path, notify, config={"ptt": {"gpio_pinn": 17}})
    argv = [sys.executable, "-m", "rtedge", "run", "--config", str(daemon.config_path)]
    proc = Proc("daemon", argv, daemon.env, tmp_path / "bad.log")
    code = proc.proc.wait(timeout=30)
    proc.terminate()
    lines = proc.log_text().strip().splitlines()
    assert code == EX_CONFIG, lines
    assert len(lines) == 1 and lines[0].startswith("rtedge: config error: ptt.gpio_pinn"), lines
    assert "test-key" not in lines[0]
    assert notify.messages == []  # never READY: systemd sees the start fail


@pytest.mark.skipif(
    os.geteuid() != 0 or not namespaces_work(), reason="needs root for a mount namespace"
)
def test_daemon_logs_structured_events_to_the_journal(tmp_path: Path) -> None:
    journal = JournalSocket(tmp_path / "journal")
    work = tmp_path / "daemon"
    work.mkdir()
    daemon = Daemon(work, closed_url(), config={"reconnect": {"initial_s": 0.2, "max_s": 0.5}})
    err = open(tmp_path / "stderr", "w+")  # noqa: SIM115
    st = os.fstat(err.fileno())
    env = {**daemon.env, "JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}"}
    argv = [sys.executable, "-m", "rtedge", "run", "--config", str(daemon.config_path)]
    proc = subprocess.Popen(journal.wrap(argv), env=env, stdout=err, stderr=err)
    daemon.alsa.start()
    try:
        wait_for(lambda: journal.events("ready"), 30, "RTEDGE_EVENT=ready")
        wait_for(lambda: len(journal.events("connect_failed")) >= 2, 15, "connect_failed")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=5) == 0
        entries = journal.drain()
        (stopping,) = journal.events("stopping")
        (ready,) = journal.events("ready")
        failed = journal.events("connect_failed")[0]
        assert ready["SYSLOG_IDENTIFIER"] == "rtedge" and ready["PRIORITY"] == "6"
        assert failed["PRIORITY"] == "4" and failed["LOGGER"].startswith("rtedge")
        assert stopping["PRIORITY"] == "6"
        assert all(e.get("SYSLOG_IDENTIFIER") == "rtedge" for e in entries)
        assert not any("test-key" in value for e in entries for value in e.values())
        err.seek(0)
        assert err.read() == ""  # the journal got it all; nothing doubled on the stream
    finally:
        daemon.alsa.stop()
        if proc.poll() is None:
            proc.kill()
        err.close()
        journal.close()
