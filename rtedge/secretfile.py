"""Reading small files that a person points the daemon at (the config, a key file, systemd
credentials) without trusting what is at the path.

A path may name a directory, a FIFO (``open`` blocks forever: ``rtedge check`` hung), a device
(``/dev/zero``: 7.6 GB read in 25 s), a symlink loop or a huge file. Each gets a message that
says which, from ``stat`` before anything is opened; the read itself is non-blocking and capped.
"""

from __future__ import annotations

import errno
import logging
import os
import stat
from pathlib import Path
from typing import Final

log = logging.getLogger(__name__)

MAX_SECRET_BYTES: Final = 16 * 1024
MAX_CONFIG_BYTES: Final = 1024 * 1024


class FileProblem(ValueError):
    """Why a file cannot be used, in words for a one-line config error."""


def _kind(mode: int) -> str | None:
    if stat.S_ISREG(mode):
        return None
    if stat.S_ISDIR(mode):
        return "is a directory, not a file"
    if stat.S_ISFIFO(mode):
        return "is a FIFO (named pipe), not a regular file"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "is a device, not a regular file"
    if stat.S_ISSOCK(mode):
        return "is a socket, not a regular file"
    return "is not a regular file"


def _stat_problem(exc: OSError) -> str:
    if exc.errno == errno.ENOENT:
        return "not found"
    if exc.errno == errno.ELOOP:
        return "is a symlink loop"
    if exc.errno == errno.EACCES:
        return "permission denied"
    if exc.errno == errno.ENOTDIR:
        return "a parent of it is not a directory"
    return f"cannot read ({exc.strerror})"


def read_small_file(path: Path, cap: int) -> tuple[str, os.stat_result]:
    """The UTF-8 text of a regular file of at most ``cap`` bytes, and its ``stat``. Raises
    FileProblem saying what is wrong (never the content)."""
    try:
        before = os.stat(path)
    except OSError as exc:
        raise FileProblem(_stat_problem(exc)) from None
    if (kind := _kind(before.st_mode)) is not None:
        raise FileProblem(kind)
    if before.st_size > cap:
        raise FileProblem(f"is larger than {cap} bytes")
    try:
        # O_NONBLOCK: if the path was swapped for a FIFO since the stat, open does not block.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY)
    except OSError as exc:
        raise FileProblem(_stat_problem(exc)) from None
    try:
        st = os.fstat(fd)
        if (kind := _kind(st.st_mode)) is not None:
            raise FileProblem(kind)
        chunks: list[bytes] = []
        size = 0
        while size <= cap:
            chunk = os.read(fd, cap + 1 - size)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    except OSError as exc:
        raise FileProblem(f"cannot read ({exc.strerror})") from None
    finally:
        os.close(fd)
    if size > cap:
        raise FileProblem(f"is larger than {cap} bytes")
    try:
        return b"".join(chunks).decode("utf-8"), st
    except UnicodeDecodeError:
        raise FileProblem("is not UTF-8 text") from None


def control_characters(value: str) -> bool:
    """True when ``value`` holds a control character (a CR/LF pasted into a key, a NUL)."""
    return any(ord(c) < 0x20 or ord(c) == 0x7F for c in value)


def read_secret(path: Path, *, warn_readable: bool = True) -> str:
    """A secret from a file: trimmed, non-empty, no control characters inside. Warns (without
    failing) when group or others may read it."""
    text, st = read_small_file(path, MAX_SECRET_BYTES)
    value = text.strip()
    if not value:
        raise FileProblem("file is empty")
    if control_characters(value):
        raise FileProblem("holds control characters (a line break inside the key?)")
    if warn_readable and st.st_mode & (stat.S_IRGRP | stat.S_IROTH):
        log.warning(
            "%s is readable by %s: chmod 600 it (or use a systemd credential)",
            path,
            "group and others"
            if st.st_mode & stat.S_IRGRP and st.st_mode & stat.S_IROTH
            else ("others" if st.st_mode & stat.S_IROTH else "its group"),
        )
    return value
