"""One readable line for a listening socket that cannot be opened, shared by the daemon's health
endpoint and the peer: which setting or flag, the address, and what usually causes it."""

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


__all__ = ["describe_bind_error"]
