"""The device's configuration sections: audio, ptt, display, health, reconnect, memory, logging."""

from __future__ import annotations

import re
import socket
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, field_validator, model_validator

from rtedge.caption_settings import CaptionSettings
from rtedge.settings_base import _Section


class AudioSettings(_Section):
    capture_device: str = "default"
    """ALSA PCM name for the microphone (``arecord -L`` lists them)."""
    playback_device: str = "default"
    """ALSA PCM name for the speaker (``aplay -L``)."""
    sample_rate: int = Field(default=48000, ge=8000, le=192000)
    """Rate the devices are opened at; converted to 48 kHz for WebRTC when it differs."""
    channels: int = Field(default=1, ge=1, le=8)
    """Channels the capture device is opened with (downmixed to mono)."""
    playback_channels: int = Field(default=2, ge=1, le=8)
    """Channels the playback device is opened with."""
    mic_bitrate_kbps: int = Field(default=64, ge=8, le=256)
    """Opus bit rate of the microphone (mono). 64 kb/s is transparent for speech and, with
    Opus in its music mode, cheaper to encode than the speech mode's lower rates."""
    mic_opus_complexity: int = Field(default=5, ge=0, le=10)
    """Opus encoder complexity (0-10) of the microphone: CPU against quality. 5 is what WebRTC
    uses on ARM phones; 10 (aiortc's) costs about twice the CPU for little audible gain in
    speech."""
    period_ms: int = Field(default=20, ge=5, le=100)
    """ALSA period length of the microphone: one audio frame per period."""
    playback_period_ms: int = Field(default=10, ge=5, le=100)
    """ALSA period length of the speaker, whose buffer is two periods: the device's share of the
    latency. 20 ms halves the playback thread's wakeups (less CPU) for 10-20 ms more delay."""
    playback_latency_ms: int = Field(default=30, ge=10, le=1000)
    """Target depth of our playback buffer; more survives jitter, less answers faster. A reply
    starts once this much is buffered, and long pauses in the service's stream bring the buffer
    back to it; a burst that comes late after a stall may take it up to 80 ms deeper before the
    oldest audio is dropped."""
    volume: float = Field(default=1.0, ge=0.0, le=4.0)
    """Software volume applied to the speaker (1.0 = unchanged)."""
    earcons: bool = True
    """Play a short sound on press and release (never sent to the service)."""
    flush_holdoff_ms: int = Field(default=500, ge=0, le=5000)
    """After a barge-in flush, discard incoming audio until the service's stream goes quiet, at
    most this long, so the tail of a cancelled reply already in flight is not played."""
    reopen_initial_s: float = Field(default=0.5, gt=0)
    """First retry delay when a device vanishes; doubles up to ``reopen_max_s``."""
    reopen_max_s: float = Field(default=10.0, gt=0)
    """Longest retry delay for a vanished device."""
    echo_cancel: bool = False
    """Cancel the speaker's echo in the microphone (WebRTC AEC3, fed what the speaker played):
    the wake word, the voice detector and the service hear the room without the assistant."""
    noise_suppression: bool = False
    """WebRTC noise suppression on the microphone (before the wake word and the service)."""
    auto_gain: bool = False
    """WebRTC AGC2 on the microphone (a quiet talker across the room is brought up)."""


class PttSettings(_Section):
    gpio_pin: int | None = Field(default=17, ge=0, le=63)
    """BCM pin of the push-to-talk button; ``""`` for no button (push-to-talk over HTTP only)."""
    active_low: bool = True
    """Button wired to ground with the internal pull-up (the usual wiring)."""
    led_pin: int | None = Field(default=None, ge=0, le=63)
    """BCM pin of a status LED (PWM capable), optional."""
    mode: Literal["hold", "toggle"] = "hold"
    """``hold``: talk while held. ``toggle``: one press starts, the next ends."""
    bounce_ms: int = Field(default=30, ge=0, le=1000)
    """Contact debounce: edges closer than this are one edge."""
    min_press_ms: int = Field(default=100, ge=0, le=2000)
    """A press shorter than this is ignored (a tap, or noise)."""
    max_hold_s: float = Field(default=60.0, gt=0, le=3600)
    """Longest the mic stays open for one press: an HTTP press expires after this unless
    pressed again (renewed), and a button held down (or stuck) is released after it."""
    forget_press_s: float | None = Field(default=None, gt=0, le=3600)
    """A press held this long is no turn: the conversation is forgotten (unset: off)."""

    @model_validator(mode="after")
    def _long_press(self) -> PttSettings:
        hold = self.forget_press_s
        if hold is not None and not self.min_press_ms / 1000 < hold < self.max_hold_s:
            raise ValueError("forget_press_s: must be between min_press_ms and max_hold_s")
        return self


class DisplaySettings(CaptionSettings, _Section):
    backend: Literal["fbdev", "mjpeg", "none"] = "none"
    """Where avatar frames go: the Linux framebuffer, an MJPEG page for a kiosk browser, or
    nowhere."""
    fbdev: Path = Path("/dev/fb0")
    """Framebuffer device (or a regular file of the right size, for tests)."""
    sysfs: Path = Path("/sys/class/graphics/fb0")
    """Directory with the framebuffer geometry (``virtual_size``, ``bits_per_pixel``,
    ``stride``)."""
    fps: int = Field(default=25, ge=1, le=60)
    """Frame rate of the local avatar while speaking, and the rate service frames (rtAV's JPEG
    events, which carry no timestamps) are paced at."""
    avatar_dir: Path | None = None
    """Directory of sprite images for the local avatar (built-in sprites when unset)."""
    local_avatar: bool = True
    """Draw the local lip-synced avatar when the service sends no frames."""
    max_frame_pixels: int = Field(default=4096 * 4096 // 4, ge=64 * 64, le=8192 * 8192)
    """Largest service frame (width x height) decoded; a JPEG declaring more is dropped and
    counted before any decoding (a 16000x16000 "bomb" would need ~1 GB)."""


def machine_id(path: Path = Path("/etc/machine-id")) -> str:
    """The systemd machine id (stable across reboots), else the host name."""
    try:
        value = path.read_text().strip()
    except OSError:
        value = ""
    return value if _DEVICE_ID.fullmatch(value) else socket.gethostname()[:64] or "unknown"


_DEVICE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


class HealthSettings(_Section):
    listen: str = "127.0.0.1:8787"
    """``HOST:PORT`` of the health/status/metrics endpoint. Keep it on loopback unless a firewall
    guards it: it also accepts push-to-talk presses."""
    device_id: str = ""
    """Name of this device in a fleet (the ``device_id`` label of ``rtedge_info``); empty means
    the machine id from ``/etc/machine-id``. Letters, digits, ``.``, ``_``, ``-``; 64 at most."""

    @field_validator("device_id")
    @classmethod
    def _device_id(cls, v: str) -> str:
        if not v:
            return machine_id()
        if not _DEVICE_ID.fullmatch(v):
            raise ValueError("must be 1-64 letters, digits, '.', '_' or '-', starting alphanumeric")
        return v

    @field_validator("listen")
    @classmethod
    def _host_port(cls, v: str) -> str:
        host, sep, port = v.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
            raise ValueError("must be HOST:PORT with a port from 0 to 65535")
        return v

    allowed_hosts: list[str] = Field(default_factory=list)
    """Names accepted in the ``Host`` header besides loopback names and the listen address
    (e.g. ``kiosk.lan`` when the endpoint is opened to a LAN). Anything else is refused, which
    defeats DNS rebinding."""
    allowed_origins: list[str] = Field(default_factory=list)
    """Web origins (``http://host:port``) whose pages may call the endpoint. Every other page
    is refused (403), including ``Origin: null``."""
    max_connections: int = Field(default=64, ge=4, le=4096)
    """Open connections at most; more are closed at once (the fds stay for the call)."""
    header_timeout_s: float = Field(default=5.0, gt=0, le=120)
    """A connection must send a whole request head within this (slowloris)."""

    @field_validator("allowed_origins")
    @classmethod
    def _origins(cls, v: list[str]) -> list[str]:
        for origin in v:
            parts = urlsplit(origin)
            if (
                parts.scheme not in ("http", "https")
                or not parts.hostname
                or parts.path not in ("", "/")
                or parts.query
                or parts.username
            ):
                raise ValueError(f"{origin!r} is not an origin (scheme://host[:port])")
        return v

    @property
    def host(self) -> str:
        return self.listen.rpartition(":")[0].strip("[]")

    @property
    def port(self) -> int:
        return int(self.listen.rpartition(":")[2])


class ReconnectSettings(_Section):
    initial_s: float = Field(default=1.0, gt=0, le=600)
    """First delay after a failed or dead call."""
    max_s: float = Field(default=60.0, gt=0, le=3600)
    """Longest delay between attempts."""
    multiplier: float = Field(default=2.0, ge=1.0, le=10.0)
    """Growth of the delay per consecutive failure."""
    jitter: float = Field(default=0.2, ge=0.0, le=1.0)
    """Random spread of each delay (0.2 = +-20 %), so a fleet does not reconnect in step."""
    auth_backoff_s: float = Field(default=300.0, gt=0, le=86400)
    """Delay after the service refuses the key (401/403): a person must fix it."""
    healthy_after_s: float = Field(default=30.0, gt=0, le=3600)
    """A call up this long resets the backoff to ``initial_s``."""

    @model_validator(mode="after")
    def _order(self) -> ReconnectSettings:
        if self.max_s < self.initial_s:
            raise ValueError("max_s: must not be smaller than initial_s")
        return self


class ConversationSettings(_Section):
    forget_after_idle_s: float | None = Field(default=None, gt=0, le=86400)
    """Forget the conversation after this long without a turn (unset: never; a kiosk: 120)."""
    max_items: int = Field(default=40, ge=2, le=1000)
    """Messages remembered at most (and seeded into a new session); the oldest go first."""
    max_chars: int = Field(default=6000, ge=100, le=200_000)
    """Characters remembered at most over all messages."""


class LoggingSettings(_Section):
    level: Literal["debug", "info", "warning", "error"] = "info"
    """Log level."""
