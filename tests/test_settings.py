"""Configuration: precedence of file, environment and credentials; one-line errors per key."""

from __future__ import annotations

from pathlib import Path

import pytest

from rtedge.settings import ConfigError, load_settings, masked_dump


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "rtedge.toml"
    path.write_text(text)
    return path


def test_defaults_without_a_file(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    s = load_settings(None) if not Path("/etc/rtedge/rtedge.toml").exists() else None
    if s is not None:
        assert s.realtime.provider == "openai"
        assert s.health.listen == "127.0.0.1:8787"
        assert s.realtime.channel_label == "oai-events"


def test_env_overrides_file_and_credentials_override_env(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = write(
        tmp_path,
        '[realtime]\nprovider = "rtav"\napi_key = "from-file"\nvoice = "file-voice"\n'
        "[audio]\nperiod_ms = 20\nsample_rate = 16000\n",
    )
    monkeypatch.setenv("RTEDGE_AUDIO__PERIOD_MS", "10")
    monkeypatch.setenv("RTEDGE_REALTIME__API_KEY", "from-env")
    s = load_settings(cfg)
    assert s.audio.period_ms == 10  # env beats file
    assert s.audio.sample_rate == 16000  # file beats default; env did not touch it
    assert s.realtime.voice == "file-voice"
    assert s.realtime.provider == "rtav"
    assert s.realtime.channel_label == "realtime"
    assert s.realtime.signaling_mode == "unified"
    assert s.realtime.api_key is not None
    assert s.realtime.api_key.get_secret_value() == "from-env"

    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "realtime.api_key").write_text("from-credential\n")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(creds))
    s = load_settings(cfg)
    assert s.realtime.api_key is not None
    assert s.realtime.api_key.get_secret_value() == "from-credential"


def test_api_key_file_is_read_when_no_key_given(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    keyfile = tmp_path / "key"
    keyfile.write_text("sk-from-keyfile\n")
    s = load_settings(write(tmp_path, f'[realtime]\napi_key_file = "{keyfile}"\n'))
    assert s.realtime.api_key is not None
    assert s.realtime.api_key.get_secret_value() == "sk-from-keyfile"


def test_secret_masked_in_dump(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    s = load_settings(write(tmp_path, '[realtime]\napi_key = "sk-very-secret-value"\n'))
    dumped = masked_dump(s)
    assert dumped["realtime"]["api_key"] == "********"
    assert "sk-very-secret-value" not in repr(s)
    assert "sk-very-secret-value" not in str(dumped)


BAD_VALUES = [
    ("realtime", "provider", '"azure"', "realtime.provider"),
    ("realtime", "url", '"ftp://x"', "realtime.url"),
    ("realtime", "url", '"http://example.com/v1/realtime/calls"', "realtime.url"),
    ("realtime", "token_url", '"nope"', "realtime.token_url"),
    ("realtime", "signaling", '"carrier-pigeon"', "realtime.signaling"),
    ("realtime", "connect_timeout_s", "0", "realtime.connect_timeout_s"),
    ("realtime", "liveness_timeout_s", '"soon"', "realtime.liveness_timeout_s"),
    ("realtime", "api_key_file", '"/nonexistent/key"', "realtime.api_key_file"),
    ("realtime", "session", '"face"', "realtime.session"),
    ("realtime", "ice_servers", '"stun:x"', "realtime.ice_servers"),
    ("realtime", "hands_free", '"maybe"', "realtime.hands_free"),
    ("audio", "sample_rate", "1000", "audio.sample_rate"),
    ("audio", "period_ms", "0", "audio.period_ms"),
    ("audio", "channels", "0", "audio.channels"),
    ("audio", "volume", "-1", "audio.volume"),
    ("audio", "playback_latency_ms", "5", "audio.playback_latency_ms"),
    ("ptt", "gpio_pin", "99", "ptt.gpio_pin"),
    ("ptt", "mode", '"sticky"', "ptt.mode"),
    ("ptt", "bounce_ms", "-5", "ptt.bounce_ms"),
    ("ptt", "led_pin", '"GPIO4"', "ptt.led_pin"),
    ("display", "backend", '"hdmi"', "display.backend"),
    ("display", "fps", "0", "display.fps"),
    ("health", "listen", '"localhost"', "health.listen"),
    ("health", "listen", '"127.0.0.1:99999"', "health.listen"),
    ("health", "device_id", '"shop 12/kiosk"', "health.device_id"),
    ("reconnect", "initial_s", "0", "reconnect.initial_s"),
    ("reconnect", "multiplier", "0.5", "reconnect.multiplier"),
    ("reconnect", "jitter", "2", "reconnect.jitter"),
    ("reconnect", "max_s", "0.1", "reconnect.max_s"),
    ("logging", "level", '"loud"', "logging.level"),
    ("audio", "no_such_key", "1", "audio.no_such_key"),
    ("audio", "capture_device", '""', "audio.capture_device: must not be empty"),
    ("audio", "playback_device", '"  "', "audio.playback_device: must not be empty"),
    ("display", "fbdev", '""', "display.fbdev: must not be empty"),
    ("realtime", "model", '""', "realtime.model: must not be empty"),
    ("health", "listen", '""', "health.listen: must not be empty"),
]


@pytest.mark.parametrize(("section", "key", "value", "named"), BAD_VALUES)
def test_every_bad_value_is_one_line_naming_the_key(
    tmp_path: Path, section: str, key: str, value: str, named: str
) -> None:
    cfg = write(tmp_path, f"[{section}]\n{key} = {value}\n")
    with pytest.raises(ConfigError) as info:
        load_settings(cfg)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(named), message


def test_unknown_section_and_bad_toml_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"^speakers: Extra inputs"):
        load_settings(write(tmp_path, "[speakers]\nx = 1\n"))
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(write(tmp_path, "[realtime\n"))
    with pytest.raises(ConfigError, match="config file not found"):
        load_settings(tmp_path / "missing.toml")


def test_bad_env_value_names_the_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RTEDGE_RECONNECT__MAX_S", "lots")
    with pytest.raises(ConfigError, match=r"^reconnect\.max_s: "):
        load_settings(write(tmp_path, ""))


def test_validation_error_never_echoes_a_secret_value(tmp_path: Path) -> None:
    # A secret pasted into the wrong key must not be printed back in the error line.
    cfg = write(tmp_path, '[realtime]\nprovider = "sk-live-abcdef123456"\n')
    with pytest.raises(ConfigError) as info:
        load_settings(cfg)
    assert "sk-live-abcdef123456" not in str(info.value)


def test_example_config_documents_every_key_and_loads() -> None:
    from rtedge.settings import Settings

    root = Path(__file__).resolve().parents[1]
    example = (root / "config" / "rtedge.toml").read_text()
    for section, field in Settings.model_fields.items():
        assert f"[{section}]" in example, section
        model = field.annotation
        assert model is not None
        for key in model.model_fields:  # type: ignore[union-attr]
            documented = f"{key} =" in example or f"[{section}.{key}]" in example  # a table
            assert documented, f"{section}.{key} missing from config/rtedge.toml"
    load_settings(root / "config" / "rtedge.toml")
    load_settings(root / "config" / "demo.toml")


def test_device_id_defaults_to_the_machine_id_and_can_be_set(tmp_path: Path) -> None:
    import socket

    from rtedge.settings import machine_id

    mid = tmp_path / "machine-id"
    mid.write_text("0123456789abcdef0123456789abcdef\n")
    assert machine_id(mid) == "0123456789abcdef0123456789abcdef"
    mid.write_text("")  # an image not yet booted: the host name stands in
    assert machine_id(mid) == socket.gethostname()
    assert load_settings(write(tmp_path, "")).health.device_id == machine_id()
    named = write(tmp_path, '[health]\ndevice_id = "shop-12.kiosk_1"\n')
    assert load_settings(named).health.device_id == "shop-12.kiosk_1"


def test_an_empty_optional_key_is_unset(tmp_path: Path) -> None:
    # config/rtedge.toml writes optional keys as `key = ""  # unset`: uncommented, they load.
    cfg = write(tmp_path, '[ptt]\ngpio_pin = ""\nled_pin = ""\n[realtime]\ninstructions = ""\n')
    settings = load_settings(cfg)
    assert settings.ptt.gpio_pin is None and settings.ptt.led_pin is None
    assert settings.realtime.instructions == ""  # empty instructions are a real choice
