"""``[realtime.live]``: the settings only GPT-Live has, and the ones that do not apply to it.

``rtedge check`` names the ``[realtime]`` settings that do not apply to GPT-Live and exits 78.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from pydantic import BaseModel, ConfigDict, Field, field_validator

if TYPE_CHECKING:
    from rtedge.settings import RealtimeSettings

LIVE_SESSIONS_URL: Final = "https://api.openai.com/v1/live/sessions"
LIVE_MODEL: Final = "gpt-live-1"


class LiveSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    startup_timeout_s: float = Field(default=10.0, gt=0, le=120)
    """``session.started`` must arrive this long after the answer, else the call is rebuilt."""
    close_timeout_s: float = Field(default=3.0, gt=0, le=30)
    """On stop and rotation: how long to wait for ``session.closed`` after ``session.close``."""
    store: bool = False
    """Keep the session at OpenAI (needed for fork and recordings; off by default)."""
    idle_timeout_s: int | None = Field(default=None, ge=1)
    """Pause inference after this much silence (standby billing); off by default."""
    wake_vad_threshold: float | None = Field(default=None, ge=0, le=1)
    """With ``idle_timeout_s``: speech above this level wakes a paused session."""
    safety_identifier: str | None = None
    """A stable id for this device, for OpenAI's abuse monitoring."""
    backend_model: str = "gpt-5-mini"
    """The Responses model that runs the device's tools (Responses delegation)."""
    tools: list[str] = Field(default_factory=list, max_length=8)
    """Built-in device tools offered to the model (``device_status``, ``device_time``): with
    any, the session uses Responses delegation and the device answers the calls; without,
    client delegation, and the device says at once that it has no backend."""

    @field_validator("tools")
    @classmethod
    def _known_tools(cls, v: list[str]) -> list[str]:
        from rtedge.live.delegation import BUILTIN_TOOLS

        for name in v:
            if name not in BUILTIN_TOOLS:
                known = ", ".join(sorted(BUILTIN_TOOLS))
                raise ValueError(f"unknown tool {name!r} (built-in tools: {known})")
        if len(set(v)) != len(v):
            raise ValueError("a tool is named twice")
        return v


#: [realtime] keys that mean nothing to GPT-Live (no ephemeral keys, no session.update, no
#: custom channel), refused by name.
_NOT_FOR_LIVE: Final = ("token_url", "signaling", "session", "data_channel_label")


def not_for_live(rt: RealtimeSettings) -> list[str]:
    """The ``[realtime]`` settings given that do not apply when ``provider = "live"``."""
    given = rt.model_fields_set
    bad = [f"realtime.{k}" for k in _NOT_FOR_LIVE if k in given]
    if "model" in given and not rt.model.startswith("gpt-live"):
        bad.append("realtime.model")
    if rt.hands_free:  # the Live turn logic is push-to-talk only, for now
        bad.append("realtime.hands_free")
    return bad


def relay_target(relay_url: str, provider: str, url: str) -> str:
    """Where the create request goes through a relay: the same API path on the relay's host."""
    from urllib.parse import urlsplit

    path = "/v1/live/sessions" if provider == "live" else urlsplit(url).path or "/v1/realtime/calls"
    return relay_url.rstrip("/") + path


def apply_live_defaults(rt: RealtimeSettings) -> None:
    """The Live endpoint and model when none were given (the Realtime ones are the defaults)."""
    if "url" not in rt.model_fields_set:
        rt.url = LIVE_SESSIONS_URL
    if "model" not in rt.model_fields_set:
        rt.model = LIVE_MODEL
