"""Quiet alsa-lib's own error printer.

alsa-lib writes several lines straight to stderr for every failed open ("ALSA lib pcm.c:2666:
(snd_pcm_open_noupdate) Unknown PCM ..."). A device that is unplugged is retried every few
seconds, so under systemd that is a journal flood; rtedge already logs one readable line per
failure with the device's name. pyalsaaudio has no hook for this, so the handler is installed
through libasound itself.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging

log = logging.getLogger(__name__)

# void handler(const char *file, int line, const char *function, int err, const char *fmt, ...)
_HANDLER_TYPE = ctypes.CFUNCTYPE(
    None, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p
)


def _ignore(file: bytes, line: int, function: bytes, err: int, fmt: bytes) -> None:
    return None


_handler = _HANDLER_TYPE(_ignore)  # kept alive for as long as libasound may call it
_installed = False


def silence_alsa_lib_errors() -> bool:
    """Route alsa-lib's messages to nowhere (once per process). False when libasound is absent."""
    global _installed
    if _installed:
        return True
    name = ctypes.util.find_library("asound")
    if name is None:
        return False
    try:
        lib = ctypes.CDLL(name)
        lib.snd_lib_error_set_handler(_handler)
    except (OSError, AttributeError) as exc:
        log.debug("cannot quiet alsa-lib: %s", exc)
        return False
    _installed = True
    return True
