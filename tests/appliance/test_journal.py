"""journald: structured RTEDGE_* fields on the daemon's log lines, and the choice between the
journal and plain stderr made from a real JOURNAL_STREAM matching a real stderr."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from rtedge import logs
from tests.appliance.conftest import REPO
from tests.appliance.journal_rig import JournalSocket, namespaces_work, parse_native
from tests.support import scaled


class Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def test_event_puts_structured_fields_on_the_record() -> None:
    logger = logging.getLogger("rtedge.test.journal")
    capture = Capture()
    logger.addHandler(capture)
    try:
        logs.event(logger, logging.WARNING, "reconnect", "call lost after %ss", 12, attempt=3)
    finally:
        logger.removeHandler(capture)
    (record,) = capture.records
    assert record.getMessage() == "call lost after 12s"
    assert record.__dict__["RTEDGE_EVENT"] == "reconnect"
    assert record.__dict__["RTEDGE_ATTEMPT"] == "3"
    line = logs.TerminalFormatter().format(record)
    assert line.endswith("call lost after 12s [event=reconnect attempt=3]")


def test_stderr_is_journal_compares_device_and_inode(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with open(tmp_path / "stream", "w") as ours, open(tmp_path / "other", "w") as other:
        monkeypatch.setattr(sys, "stderr", ours)
        st, st_other = os.fstat(ours.fileno()), os.fstat(other.fileno())
        monkeypatch.setenv("JOURNAL_STREAM", f"{st.st_dev}:{st.st_ino}")
        assert logs.stderr_is_journal()
        # Inherited by a child whose stderr was redirected elsewhere: not the journal.
        monkeypatch.setenv("JOURNAL_STREAM", f"{st_other.st_dev}:{st_other.st_ino}")
        assert not logs.stderr_is_journal()
        for bad in ("", "garbage", f"{st.st_dev}:", f":{st.st_ino}"):
            monkeypatch.setenv("JOURNAL_STREAM", bad)
            assert not logs.stderr_is_journal()


def test_setup_logging_picks_the_journal_handler(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, restore_logging: None
) -> None:
    from systemd.journal import JournalHandler

    with open(tmp_path / "stream", "w") as ours:
        monkeypatch.setattr(sys, "stderr", ours)
        st = os.fstat(ours.fileno())
        monkeypatch.setenv("JOURNAL_STREAM", f"{st.st_dev}:{st.st_ino}")
        logs.setup_logging("info")
        (handler,) = logging.getLogger().handlers
        assert isinstance(handler, JournalHandler)
        assert handler._extra["SYSLOG_IDENTIFIER"] == "rtedge"
        monkeypatch.delenv("JOURNAL_STREAM")
        logs.setup_logging("info")
        (handler,) = logging.getLogger().handlers
        assert not isinstance(handler, JournalHandler)


def test_parse_native_binary_field() -> None:
    data = b"MESSAGE\n" + (5).to_bytes(8, "little") + b"a\nb\nc\nPRIORITY=6\n"
    assert parse_native(data) == {"MESSAGE": "a\nb\nc", "PRIORITY": "6"}


CHILD = textwrap.dedent(
    """
    import logging, sys
    from rtedge import logs
    logs.setup_logging("info")
    log = logging.getLogger("rtedge.supervisor")
    logs.event(log, logging.WARNING, "reconnect", "call lost, retry in %.1fs", 2.0, attempt=3)
    try:
        1 / 0
    except ZeroDivisionError:
        log.exception("service_error test")
    print("child done", file=sys.stdout)
    """
)


@pytest.mark.skipif(
    os.geteuid() != 0 or not namespaces_work(), reason="needs root for a mount namespace"
)
def test_entries_reach_the_journal_socket_with_their_fields(tmp_path: Path) -> None:
    journal = JournalSocket(tmp_path / "journal")
    try:
        with open(tmp_path / "stderr", "w+") as err:
            st = os.fstat(err.fileno())
            env = {**os.environ, "PYTHONPATH": str(REPO)}
            env["JOURNAL_STREAM"] = f"{st.st_dev}:{st.st_ino}"
            proc = subprocess.run(
                journal.wrap([sys.executable, "-c", CHILD]),
                stdout=subprocess.PIPE,
                stderr=err,
                env=env,
                text=True,
                timeout=scaled(60),
            )
            err.seek(0)
            stderr = err.read()
        assert proc.returncode == 0 and "child done" in proc.stdout, stderr
        assert stderr == ""  # everything went to the journal, nothing to the stream
        (entry,) = journal.events("reconnect")
        assert entry["MESSAGE"] == "rtedge.supervisor: call lost, retry in 2.0s"
        assert entry["PRIORITY"] == "4"
        assert entry["SYSLOG_IDENTIFIER"] == "rtedge"
        assert entry["RTEDGE_ATTEMPT"] == "3"
        assert entry["LOGGER"] == "rtedge.supervisor"
        (error,) = [e for e in journal.drain() if "service_error test" in e["MESSAGE"]]
        assert error["PRIORITY"] == "3" and "ZeroDivisionError" in error["MESSAGE"]
    finally:
        journal.close()
