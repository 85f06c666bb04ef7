"""``rtedge demo`` as a new user runs it: a real process with its real children."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import base_env, wait_for

# The demo runs as a user runs it, on its usual ports (8787, 8788) when they are free: two demos
# at once could both find a port free and race for it. Under xdist they run one at a time.
pytestmark = pytest.mark.xdist_group("demo-ports")


def children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rpartition(")")[2].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT])
def test_demo_keep_stops_its_children_daemon_first(tmp_path: Path, sig: signal.Signals) -> None:
    out_path = tmp_path / "out.txt"
    with out_path.open("w") as out:
        demo = subprocess.Popen(
            [sys.executable, "-m", "rtedge", "demo", "--keep", "--workdir", str(tmp_path)],
            env=base_env(),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_for(lambda: "demo: both running" in out_path.read_text(), 90, "the demo's turn")
        kids = children(demo.pid)
        assert len(kids) == 2, kids  # the peer and the daemon
        demo.send_signal(sig)
        assert demo.wait(timeout=30) == 0
    finally:
        if demo.poll() is None:
            demo.kill()
    # The demo waits for both before it exits: no grace period here.
    assert not [pid for pid in kids if alive(pid)], "a child outlived the demo"
    text = out_path.read_text()
    assert "Traceback" not in text, text
    assert f"demo: {sig.name}: stopping" in text
    assert text.index("demo: daemon exited with 0") < text.index("demo: peer exited with 0")
    # Stopped before the peer, the daemon hangs up cleanly: its log ends without a warning.
    daemon_log = (tmp_path / "daemon.log").read_text()
    assert " WARNING " not in daemon_log and " ERROR " not in daemon_log, daemon_log
    stop = daemon_log.index("stopping [event=stopping]")
    assert "reason=shutdown" in daemon_log[stop:], daemon_log  # hung up, reason named
    peer_log = (tmp_path / "peer.log").read_text()
    assert " ended: " in peer_log and "ended: server_shutdown" not in peer_log, peer_log
    if sig is signal.SIGTERM:
        # What the report says is explained where it would puzzle: the reply, the frame count.
        assert "demo: reply transcript: 'I heard " in text
        assert "(the local peer has no speech recognizer: it answers with how much audio" in text
        assert "from the peer's image events" in text and "drawn by the local avatar" in text


def test_demo_moves_off_ports_that_are_taken(tmp_path: Path) -> None:
    import socket

    with socket.socket() as a, socket.socket() as b:
        for sock, port in ((a, 8788), (b, 8787)):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # past TIME_WAIT
            with contextlib.suppress(OSError):  # taken already (another demo?): the same
                sock.bind(("127.0.0.1", port))
                sock.listen()
        out = subprocess.run(
            [sys.executable, "-m", "rtedge", "demo", "--workdir", str(tmp_path)],
            env=base_env(),
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "demo: port 8788 is taken; the peer port is " in out.stdout
    assert "demo: port 8787 is taken; the health port is " in out.stdout
    assert out.stdout.rstrip().endswith("demo: peer exited with 0")
    assert "demo: OK" in out.stdout
    assert os.path.exists(tmp_path / "speaker.wav")


def test_demo_over_gpt_live(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "rtedge", "demo", "--provider", "live", "--workdir", str(tmp_path)],
        env=base_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "demo: OK" in out.stdout
    assert "demo: call live_" in out.stdout  # a GPT-Live session, not a Realtime call
    assert "session.started x1" in out.stdout and "session.output_transcript.delta" in out.stdout
    transcript = next(ln for ln in out.stdout.splitlines() if "reply transcript" in ln)
    assert "I heard" in transcript, transcript
