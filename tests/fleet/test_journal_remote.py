"""rtedge's structured journal fields survive the fleet's log path: the real systemd-journald
(run by hand in a private mount namespace, since no systemd is PID 1 here) stores what rtedge's
JournalHandler sends; systemd-journal-upload ships the journal over HTTP to a
systemd-journal-remote collector on loopback; journalctl on the collector's files finds the
entries by RTEDGE_EVENT and RTEDGE_DEVICE_ID with every field intact."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.appliance.journal_rig import namespaces_work
from tests.support import ROOT, free_port

SYSTEMD = Path("/lib/systemd")
JOURNALD = SYSTEMD / "systemd-journald"
REMOTE = SYSTEMD / "systemd-journal-remote"
UPLOAD = SYSTEMD / "systemd-journal-upload"

pytestmark = [
    pytest.mark.timeout(120),
    pytest.mark.skipif(
        not (JOURNALD.exists() and REMOTE.exists() and UPLOAD.exists()),
        reason="systemd-journald / systemd-journal-remote missing (scripts/setup installs them)",
    ),
    pytest.mark.skipif(
        os.geteuid() != 0 or not namespaces_work(),
        reason="journald needs its own /run: root and a private mount namespace",
    ),
]

# The daemon's logging as under systemd: stderr is the journal stream, so setup_logging picks
# the JournalHandler, which sends native-protocol entries to /run/systemd/journal/socket.
CHILD = textwrap.dedent(
    """
    import logging, os, sys
    st = os.fstat(sys.stderr.fileno())
    os.environ["JOURNAL_STREAM"] = f"{st.st_dev}:{st.st_ino}"
    from rtedge.logs import event, setup_logging
    setup_logging("info", "kiosk-7")
    log = logging.getLogger("rtedge.realtime.supervisor")
    event(log, logging.WARNING, "reconnect", "call lost (%s); reconnecting in %.1fs",
          "no audio", 2.0, reason="no audio from the service", attempt=3)
    event(log, logging.ERROR, "auth_failed", "service refused the key", status=401)
    """
)

# Inside the namespace: a private /run with the real journald on its usual sockets, the
# collector on a loopback port writing under $OUT, one upload of everything, then stop.
SCRIPT = textwrap.dedent(
    """
    set -eu
    mount -t tmpfs tmpfs /run
    mkdir -p /run/systemd/journal
    "$JOURNALD" >"$OUT/journald.log" 2>&1 & jpid=$!
    i=0; until [ -S /run/systemd/journal/socket ]; do i=$((i+1)); [ $i -lt 200 ]; sleep 0.05; done
    "$PYTHON" -c "$CHILD" 2>"$OUT/child-stderr"
    "$REMOTE" --listen-http="127.0.0.1:$PORT" --output="$OUT/remote/" \
        >"$OUT/remote.log" 2>&1 & rpid=$!
    i=0; until "$UPLOAD" --url="http://127.0.0.1:$PORT" --directory=/run/log/journal \
        --follow=no >"$OUT/upload.log" 2>&1; do i=$((i+1)); [ $i -lt 100 ]; sleep 0.1; done
    kill $rpid $jpid; wait $rpid || true; wait $jpid || true
    """
)


def test_fields_reach_the_collector_through_upload_and_remote(tmp_path: Path) -> None:
    (tmp_path / "remote").mkdir()
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "OUT": str(tmp_path),
        "PORT": str(free_port()),
        "CHILD": CHILD,
        "PYTHON": sys.executable,
        "JOURNALD": str(JOURNALD),
        "REMOTE": str(REMOTE),
        "UPLOAD": str(UPLOAD),
    }
    env.pop("JOURNAL_STREAM", None)
    proc = subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "sh", "-c", SCRIPT],
        env=env,
        capture_output=True,
        text=True,
        timeout=90,
    )
    logs = {p.name: p.read_text() for p in tmp_path.glob("*.log")}
    assert proc.returncode == 0, (proc.stdout, proc.stderr, logs)
    assert (tmp_path / "child-stderr").read_text() == ""  # all of it went to the journal
    assert list((tmp_path / "remote").glob("*.journal")), logs

    def query(*matches: str) -> list[dict[str, str]]:
        out = subprocess.run(
            ["journalctl", f"--directory={tmp_path / 'remote'}", "-o", "json", *matches],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        ).stdout
        return [json.loads(line) for line in out.splitlines()]

    # The queries a fleet owner runs on the collector (README "Running a fleet").
    (reconnect,) = query("RTEDGE_EVENT=reconnect", "RTEDGE_DEVICE_ID=kiosk-7")
    assert (
        reconnect["MESSAGE"]
        == "rtedge.realtime.supervisor: call lost (no audio); reconnecting in 2.0s"
    )
    assert reconnect["RTEDGE_REASON"] == "no audio from the service"
    assert reconnect["RTEDGE_ATTEMPT"] == "3"
    assert reconnect["PRIORITY"] == "4"
    assert reconnect["SYSLOG_IDENTIFIER"] == "rtedge"
    assert reconnect["LOGGER"] == "rtedge.realtime.supervisor"
    assert reconnect["_MACHINE_ID"]  # the device's machine id, added by its journald
    (auth,) = query("SYSLOG_IDENTIFIER=rtedge", "PRIORITY=3")
    assert auth["RTEDGE_EVENT"] == "auth_failed" and auth["RTEDGE_STATUS"] == "401"
    assert auth["RTEDGE_DEVICE_ID"] == "kiosk-7"
    assert query("RTEDGE_DEVICE_ID=kiosk-8") == []
