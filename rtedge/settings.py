"""The whole configuration: its sources, loading, and every section re-exported.

rtedge's configuration: one TOML file, overridden by ``RTEDGE_<SECTION>__<KEY>`` environment
variables, overridden in turn by systemd credentials for secrets.

Precedence, lowest first: field defaults, the TOML file (``--config``; ``/etc/rtedge/rtedge.toml``
when it exists), environment variables, files in ``$CREDENTIALS_DIRECTORY`` named
``<section>.<key>`` (systemd ``LoadCredential=realtime.api_key:/etc/rtedge/api_key``). A secret
may also come from ``<key>_file`` (``realtime.api_key_file``), read only when no other source
gave it.
"""

from __future__ import annotations

import contextvars
import os
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, SecretStr, ValidationError
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from rtedge.secretfile import MAX_CONFIG_BYTES, FileProblem, read_secret, read_small_file
from rtedge.settings_device import (
    AudioSettings,
    ConversationSettings,
    DisplaySettings,
    HealthSettings,
    LoggingSettings,
    PttSettings,
    ReconnectSettings,
    machine_id,
)
from rtedge.settings_handsfree import WakeSettings
from rtedge.settings_realtime import OPENAI_CALLS_URL, RealtimeSettings, is_loopback_host

DEFAULT_CONFIG_PATH = Path("/etc/rtedge/rtedge.toml")

_config_file: contextvars.ContextVar[Path | None] = contextvars.ContextVar(
    "rtedge_config_file", default=None
)


class ConfigError(Exception):
    """A configuration problem, reported as one line and exit status 78 (EX_CONFIG)."""


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
    "DEFAULT_CONFIG_PATH",
    "OPENAI_CALLS_URL",
    "AudioSettings",
    "ConfigError",
    "ConversationSettings",
    "DisplaySettings",
    "HealthSettings",
    "LoggingSettings",
    "PttSettings",
    "RealtimeSettings",
    "ReconnectSettings",
    "Settings",
    "WakeSettings",
    "is_loopback_host",
    "load_settings",
    "machine_id",
    "masked_dump",
    "require_credentials",
]
