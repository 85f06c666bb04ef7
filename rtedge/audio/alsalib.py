"""alsa-lib through ctypes where pyalsaaudio has no call: its error printer, quieted, and the
PCMs' descriptions.

alsa-lib writes several lines straight to stderr for every failed open ("ALSA lib pcm.c:2666:
(snd_pcm_open_noupdate) Unknown PCM ..."). A device that is unplugged is retried every few
seconds, so under systemd that is a journal flood; rtedge already logs one readable line per
failure with the device's name. pyalsaaudio has no hook for this, so the handler is installed
through libasound itself.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import logging
from dataclasses import dataclass

log = logging.getLogger(__name__)

# void handler(const char *file, int line, const char *function, int err, const char *fmt, ...)
_HANDLER_TYPE = ctypes.CFUNCTYPE(
    None, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p
)


def _ignore(file: bytes, line: int, function: bytes, err: int, fmt: bytes) -> None:
    return None


_handler = _HANDLER_TYPE(_ignore)  # kept alive for as long as libasound may call it
_installed = False


@functools.cache
def _libasound() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("asound")
    if name is None:
        return None
    try:
        return ctypes.CDLL(name)
    except OSError as exc:
        log.debug("cannot load libasound: %s", exc)
        return None


def silence_alsa_lib_errors() -> bool:
    """Route alsa-lib's messages to nowhere (once per process). False when libasound is absent."""
    global _installed
    if _installed:
        return True
    lib = _libasound()
    if lib is None:
        return False
    try:
        lib.snd_lib_error_set_handler(_handler)
    except AttributeError as exc:
        log.debug("cannot quiet alsa-lib: %s", exc)
        return False
    _installed = True
    return True


@dataclass(frozen=True)
class PcmHint:
    """One PCM as ``aplay -L`` / ``arecord -L`` show it."""

    name: str
    description: str  # may span lines: "USB PnP Sound Device, USB Audio\nDefault Audio Device"
    direction: str | None  # "Input", "Output", or None for both

    @property
    def capture(self) -> bool:
        return self.direction in (None, "Input")

    @property
    def playback(self) -> bool:
        return self.direction in (None, "Output")


def pcm_hints() -> list[PcmHint]:
    """The PCMs ALSA advertises, with their descriptions (``snd_device_name_hint``, the call
    behind ``aplay -L``; pyalsaaudio keeps only the names). PCMs defined without a ``hint``
    are usable but not listed."""
    lib = _libasound()
    if lib is None:
        return []
    lib.snd_device_name_get_hint.restype = ctypes.c_void_p
    lib.snd_device_name_get_hint.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
    libc = ctypes.CDLL(None)
    libc.free.argtypes = [ctypes.c_void_p]

    def get(hint: int, key: bytes) -> str | None:
        ptr = lib.snd_device_name_get_hint(hint, key)
        if not ptr:
            return None
        try:
            return ctypes.string_at(ptr).decode(errors="replace")
        finally:
            libc.free(ptr)

    hints = ctypes.POINTER(ctypes.c_void_p)()
    if lib.snd_device_name_hint(-1, b"pcm", ctypes.byref(hints)) < 0 or not hints:
        return []
    out: list[PcmHint] = []
    try:
        i = 0
        while hints[i]:
            name = get(hints[i], b"NAME")
            if name is not None:
                desc = get(hints[i], b"DESC") or ""
                out.append(PcmHint(name, desc.strip(), get(hints[i], b"IOID")))
            i += 1
    finally:
        lib.snd_device_name_free_hint(hints)
    return out
