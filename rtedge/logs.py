"""Logging: readable lines on a terminal, structured journald entries under systemd.

Structured fields travel as ``extra={"RTEDGE_EVENT": "reconnect", ...}``; journald keeps every
upper-case field, so ``journalctl -u rtedge RTEDGE_EVENT=reconnect`` finds them, and the terminal
formatter shows them as ``key=value`` after the message.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Any

_STD_ATTRS = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {
    "message",
    "asctime",
    "taskName",
}


def event(
    logger: logging.Logger, level: int, name: str, msg: str, *args: object, **fields: Any
) -> None:
    """Log ``msg`` with ``RTEDGE_EVENT=name`` and ``RTEDGE_<FIELD>`` structured fields."""
    extra = {"RTEDGE_EVENT": name}
    extra.update({f"RTEDGE_{k.upper()}": str(v) for k, v in fields.items()})
    logger.log(level, msg, *args, extra=extra)


class TerminalFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s: %(message)s", "%H:%M:%S")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        fields = [
            f"{k.removeprefix('RTEDGE_').lower()}={v}"
            for k, v in record.__dict__.items()
            if k.startswith("RTEDGE_") and k not in _STD_ATTRS
        ]
        return f"{line} [{' '.join(fields)}]" if fields else line


def stderr_is_journal() -> bool:
    """True when systemd connected our stderr to the journal (``JOURNAL_STREAM=dev:inode``)."""
    value = os.environ.get("JOURNAL_STREAM", "")
    dev, _, ino = value.partition(":")
    if not dev.isdigit() or not ino.isdigit():
        return False
    try:
        st = os.fstat(sys.stderr.fileno())
    except (OSError, ValueError):
        return False
    return st.st_dev == int(dev) and st.st_ino == int(ino)


def setup_logging(level: str = "info", device_id: str | None = None) -> None:
    """Log to the journal when systemd gave us one, else to stderr. ``device_id`` goes on every
    journal entry as ``RTEDGE_DEVICE_ID``, so a fleet's collector can pick one device's lines."""
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    handler: logging.Handler
    if stderr_is_journal():
        from systemd.journal import JournalHandler

        extra = {"RTEDGE_DEVICE_ID": device_id} if device_id else {}
        handler = JournalHandler(SYSLOG_IDENTIFIER="rtedge", **extra)
        handler.setFormatter(logging.Formatter("%(name)s: %(message)s"))
    else:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(TerminalFormatter())
    root.addHandler(handler)
    root.setLevel(level.upper())
    # aiortc/aioice are chatty at INFO about every candidate pair.
    for noisy in ("aioice", "aiortc", "aiohttp.access"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
