"""The ``[realtime]`` configuration section: the service, how to reach it, the session wanted."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator, model_validator

from rtedge.live.settings import LiveSettings, apply_live_defaults, not_for_live, relay_target
from rtedge.secretfile import FileProblem, control_characters, read_secret
from rtedge.settings_base import _Section

OPENAI_CALLS_URL = "https://api.openai.com/v1/realtime/calls"


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
