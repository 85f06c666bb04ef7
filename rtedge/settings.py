"""rtedge's configuration: one TOML file, overridden by ``RTEDGE_<SECTION>__<KEY>`` environment
variables, overridden in turn by systemd credentials for secrets.

Precedence, lowest first: field defaults, the TOML file (``--config``; ``/etc/rtedge/rtedge.toml``
when it exists), environment variables, files in ``$CREDENTIALS_DIRECTORY`` named
``<section>.<key>`` (systemd ``LoadCredential=realtime.api_key:/etc/rtedge/api_key``). A secret
may also come from ``<key>_file`` (``realtime.api_key_file``), read only when no other source
gave it.
"""

from __future__ import annotations

import contextvars
import ipaddress
import os
import re
import socket
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from rtedge.caption_settings import CaptionSettings
from rtedge.live.settings import LiveSettings, apply_live_defaults, not_for_live, relay_target
from rtedge.secretfile import (
    MAX_CONFIG_BYTES,
    FileProblem,
    control_characters,
    read_secret,
    read_small_file,
)
from rtedge.settings_base import _Section
from rtedge.settings_handsfree import WakeSettings

DEFAULT_CONFIG_PATH = Path("/etc/rtedge/rtedge.toml")
OPENAI_CALLS_URL = "https://api.openai.com/v1/realtime/calls"

_config_file: contextvars.ContextVar[Path | None] = contextvars.ContextVar(
    "rtedge_config_file", default=None
)


class ConfigError(Exception):
    """A configuration problem, reported as one line and exit status 78 (EX_CONFIG)."""


def is_loopback_host(host: str | None) -> bool:
    if not host:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class RealtimeSettings(_Section):
    # An empty api_key is "no key" (signaling = "raw" only), not "unset".
    _may_be_empty = frozenset({"instructions", "api_key"})

    url: str = OPENAI_CALLS_URL
    """The calls endpoint the SDP offer is POSTed to (OpenAI, rtAV or ``rtedge peer``)."""
    provider: Literal["openai", "rtav", "local", "live"] = "openai"
    """Which service shape to speak: ``openai`` (GA session, channel ``oai-events``), ``rtav`` (flat
    session with ``face``/``driving``/``modalities``, channel ``realtime``) or ``local``
    (rtedge peer, GA shape); ``live``: GPT-Live (``POST /v1/live/sessions``, rtedge.live)."""
    relay_url: str | None = None
    """The owner's ``rtedge relay`` (its base URL): create requests go there with ``api_key`` as
    the device token, instead of to ``url`` with the project key."""
    live: LiveSettings = Field(default_factory=LiveSettings)
    """``[realtime.live]``: settings only GPT-Live has."""
    api_key: SecretStr | None = None
    """Standard API key. Prefer ``api_key_file`` or a systemd credential over writing it here."""
    api_key_file: Path | None = None
    """File holding the API key (read when ``api_key`` is not set elsewhere)."""
    token_url: str | None = None
    """Optional backend that hands out ephemeral keys (``POST``, JSON reply with ``value`` or
    ``client_secret``). When set, no standard key is needed on the device."""
    signaling: Literal["auto", "ephemeral", "unified", "raw"] = "auto"
    """How a standard key is used: ``ephemeral`` mints a client secret then POSTs raw SDP;
    ``unified`` POSTs multipart ``sdp`` + ``session``; ``raw`` POSTs the raw SDP with the
    configured key itself, or with no key when ``api_key = ""`` (servers with neither
    ``client_secrets`` nor multipart); ``auto`` is unified for rtAV, ephemeral otherwise."""
    model: str = "gpt-realtime-2"
    """Model name put in the session. ``rtedge check`` warns when it is on the ``openai``
    package's deprecated list (``gpt-realtime`` shuts down on 2027-01-20)."""
    instructions: str = "You are a helpful voice assistant on a small device. Be brief."
    """System instructions for the assistant."""
    voice: str = "marin"
    """Voice name (OpenAI voices, or an rtAV voice id)."""
    session: dict[str, Any] = Field(default_factory=dict)
    """Extra fields merged into the session object as given, for provider extensions such as
    rtAV's ``face`` and ``driving``."""
    data_channel_label: str | None = None
    """Data channel label; default per provider (``oai-events``, rtAV ``realtime``)."""
    ice_servers: list[str] = Field(default_factory=list)
    """STUN/TURN URLs for the peer connection. Empty means host candidates only."""
    allow_insecure_http: bool = False
    """Permit plain ``http://`` to a host that is not loopback (a lab only)."""
    hands_free: bool = False
    """Use the service's ``server_vad`` turn detection and send the mic always, instead of
    push-to-talk."""
    log_transcripts: bool = True
    """Write both sides' transcripts to the log."""
    audio_jitter_buffer: Literal["rtedge", "aiortc"] = "rtedge"
    """Receive buffer for the service's audio: ``rtedge`` hands each packet on as soon as it is
    in order (our playout buffer absorbs jitter); ``aiortc`` keeps aiortc's own, which holds
    every frame 80 ms and stays 280 ms deep after a lost packet."""
    audio_reorder_packets: int = Field(default=1, ge=0, le=8)
    """``rtedge`` buffer: a missing packet is waited for while this many newer ones are held
    (one packet is 20 ms), then skipped as lost."""
    connect_timeout_s: float = Field(default=15.0, gt=0, le=300)
    """Time allowed for signaling plus the data channel opening."""
    liveness_timeout_s: float = Field(default=10.0, gt=0, le=600)
    """While a response plays, no RTP or no event for this long marks the call dead."""
    rotate_after_s: float = Field(default=55 * 60.0, gt=0)
    """Start a fresh session after this age, between turns (OpenAI caps sessions at 60 min)."""
    make_before_break: bool = True
    """Rotate by opening (and seeding) the next call while the current one still serves."""

    @field_validator("url", "token_url", "relay_url")
    @classmethod
    def _http_url(cls, v: str | None) -> str | None:
        if v is None:
            return v
        parts = urlsplit(v)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an http:// or https:// URL with a host")
        return v

    @model_validator(mode="after")
    def _checks(self) -> RealtimeSettings:
        for name in ("url", "token_url", "relay_url"):
            value = getattr(self, name)
            if value is None:
                continue
            parts = urlsplit(value)
            if (
                parts.scheme == "http"
                and not is_loopback_host(parts.hostname)
                and not self.allow_insecure_http
            ):
                raise ValueError(
                    f"{name}: plain http:// to a non-loopback host is refused "
                    "(use https, or set realtime.allow_insecure_http)"
                )
        if self.api_key is None and self.api_key_file is not None:
            try:
                self.api_key = SecretStr(read_secret(self.api_key_file))
            except FileProblem as exc:
                raise ValueError(f"api_key_file: {self.api_key_file} {exc}") from None
        if (
            self.api_key is not None
            and not self.api_key.get_secret_value()
            and self.signaling != "raw"
        ):
            raise ValueError('api_key: empty (no key is allowed only with signaling = "raw")')
        if self.relay_url:
            self.url = relay_target(self.relay_url, self.provider, self.url)
        if self.provider == "live":
            bad = not_for_live(self)
            if bad:
                raise ValueError(f'not applicable to provider = "live": {", ".join(bad)}')
            apply_live_defaults(self)
        elif self.live.tools:
            raise ValueError('live.tools: device tools are offered on provider = "live" only')
        return self

    @field_validator("api_key")
    @classmethod
    def _clean_key(cls, v: SecretStr | None) -> SecretStr | None:
        # A CR/LF or NUL in a key makes every request fail (or splits a header) at run time.
        if v is not None and control_characters(v.get_secret_value().strip()):
            raise ValueError("holds control characters (a line break inside the key?)")
        return None if v is None else SecretStr(v.get_secret_value().strip())

    @property
    def channel_label(self) -> str:
        if self.data_channel_label:
            return self.data_channel_label
        return "realtime" if self.provider == "rtav" else "oai-events"

    @property
    def signaling_mode(self) -> Literal["ephemeral", "unified", "raw"]:
        if self.signaling != "auto":
            return self.signaling
        return "unified" if self.provider == "rtav" else "ephemeral"


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


class Settings(BaseSettings):
    """The whole configuration; see ``config/rtedge.toml`` for a commented example."""

    model_config = SettingsConfigDict(
        env_prefix="RTEDGE_",
        env_nested_delimiter="__",
        extra="forbid",
        use_attribute_docstrings=True,
    )

    realtime: RealtimeSettings = Field(default_factory=RealtimeSettings)
    """The Realtime service and the session."""
    audio: AudioSettings = Field(default_factory=AudioSettings)
    """ALSA microphone and speaker."""
    ptt: PttSettings = Field(default_factory=PttSettings)
    """Push-to-talk button and status LED."""
    display: DisplaySettings = Field(default_factory=DisplaySettings)
    """Avatar display."""
    health: HealthSettings = Field(default_factory=HealthSettings)
    """Local HTTP health endpoint."""
    reconnect: ReconnectSettings = Field(default_factory=ReconnectSettings)
    """Backoff between call attempts."""
    logging: LoggingSettings = Field(default_factory=LoggingSettings)
    """Logging."""
    conversation: ConversationSettings = Field(default_factory=ConversationSettings)
    """Conversation memory across calls, and forgetting it."""
    wake: WakeSettings = Field(default_factory=WakeSettings)
    """Local wake word (hands-free turns)."""

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [
            init_settings,
            _CredentialsSource(settings_cls),
            env_settings,
        ]
        path = _config_file.get()
        if path is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=path))
        return tuple(sources)


class _CredentialsSource(PydanticBaseSettingsSource):
    """Secrets from ``$CREDENTIALS_DIRECTORY/<section>.<key>`` (systemd ``LoadCredential=``)."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False  # everything is done in __call__

    def __call__(self) -> dict[str, Any]:
        directory = os.environ.get("CREDENTIALS_DIRECTORY")
        if not directory:
            return {}
        out: dict[str, Any] = {}
        for section_name, section_field in Settings.model_fields.items():
            section_type = section_field.annotation
            if not isinstance(section_type, type) or not issubclass(section_type, BaseModel):
                continue
            for key, field in section_type.model_fields.items():
                if "SecretStr" not in str(field.annotation):
                    continue
                path = Path(directory) / f"{section_name}.{key}"
                if not path.exists():
                    continue
                try:
                    value = read_secret(path, warn_readable=False)  # systemd's dir is private
                except FileProblem as exc:
                    raise ConfigError(f"credential {path} {exc}") from None
                out.setdefault(section_name, {})[key] = value
        return out


def _location(loc: tuple[int | str, ...]) -> str:
    return ".".join(str(p) for p in loc if p not in ("function-after", "function-before"))


def format_validation_error(exc: ValidationError) -> str:
    """One line naming each bad key and what is wrong, never the value (it may be a secret)."""
    parts = []
    for err in exc.errors(include_input=False, include_url=False):
        where = _location(err["loc"])
        msg = err["msg"].removeprefix("Value error, ")
        # A model-level check names its own key ("max_s: ...") after the section's location.
        if ": " in msg and msg.split(": ", 1)[0].isidentifier():
            key, msg = msg.split(": ", 1)
            where = f"{where}.{key}" if where else key
        parts.append(f"{where or 'config'}: {msg}")
    return "; ".join(parts)


def resolve_config_path(path: Path | None) -> Path | None:
    if path is not None:
        return path
    return DEFAULT_CONFIG_PATH if DEFAULT_CONFIG_PATH.is_file() else None


def load_settings(path: Path | None = None) -> Settings:
    """Load the configuration or raise ConfigError with a one-line reason."""
    path = resolve_config_path(path)
    if path is not None:
        import tomllib

        try:
            text, _ = read_small_file(path, MAX_CONFIG_BYTES)
            tomllib.loads(text)
        except FileProblem as exc:
            problem = "config file not found" if str(exc) == "not found" else f"config file {exc}"
            raise ConfigError(f"{path}: {problem}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: not valid TOML ({exc})") from None
    token = _config_file.set(path)
    try:
        return Settings()
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc)) from None
    finally:
        _config_file.reset(token)


def require_credentials(settings: Settings) -> None:
    """What ``rtedge run`` needs beyond valid values: a way to authenticate to the service.
    Without one every call would be refused; that waits for a person, so it is a config error."""
    rt = settings.realtime
    if rt.api_key is None and rt.token_url is None:
        raise ConfigError(
            "realtime.api_key: not set (give api_key, api_key_file, the systemd credential "
            "realtime.api_key, or a token_url)"
        )


def masked_dump(settings: Settings) -> dict[str, Any]:
    """The effective configuration as plain data, secrets shown as ``********``."""
    data: dict[str, Any] = settings.model_dump(mode="json")
    for section_name in Settings.model_fields:
        section = getattr(settings, section_name)
        for key in type(section).model_fields:
            if isinstance(getattr(section, key), SecretStr):
                data[section_name][key] = "********"
    return data


__all__ = [
    "AudioSettings",
    "ConfigError",
    "DisplaySettings",
    "HealthSettings",
    "LoggingSettings",
    "PttSettings",
    "RealtimeSettings",
    "ReconnectSettings",
    "Settings",
    "load_settings",
    "masked_dump",
]
