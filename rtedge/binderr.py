"""Listening sockets, shared by the daemon's endpoints, the relay and the peer: ``HOST:PORT``
parsing, and one readable line for a socket that cannot be opened (which setting or flag, the
address, and what usually causes it)."""

from __future__ import annotations

import errno
import os
import socket

_HINTS = {
    errno.EADDRINUSE: "another program is listening there",
    errno.EADDRNOTAVAIL: "no network interface of this machine has that address",
    errno.EACCES: "ports below 1024 need privileges",
}


def describe_bind_error(setting: str, address: str, exc: OSError, *, in_use_hint: str = "") -> str:
    """``health.listen 127.0.0.1:8787: address already in use (another program ...)``."""
    if isinstance(exc, socket.gaierror) or not exc.errno or exc.errno < 0:
        reason = f"cannot resolve the host ({exc.strerror or exc})"
    else:  # asyncio's text repeats the address; the errno's own text is enough
        reason = os.strerror(exc.errno).lower()
    hint = _HINTS.get(exc.errno or 0, "")
    if exc.errno == errno.EADDRINUSE and in_use_hint:
        hint = f"{hint}; {in_use_hint}"
    return f"{setting} {address}: {reason}" + (f" ({hint})" if hint else "")


def split_listen(value: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[::1]:8788`` too) as (host, port); ValueError names the flag."""
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ValueError(f"--listen must be HOST:PORT, got {value!r}")
    return host.strip("[]"), int(port)


__all__ = ["describe_bind_error", "split_listen"]
