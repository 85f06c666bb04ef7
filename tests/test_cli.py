"""The command line as an operator meets it: real ``python -m rtedge`` processes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from rtedge import __version__
from tests.support import base_env, scaled

SECRET = "sk-proj-NEVER-PRINT-THIS-0123456789"


def rtedge(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full = base_env()
    full.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "rtedge", *args],
        capture_output=True,
        text=True,
        env=full,
        timeout=scaled(60),
    )


def test_version() -> None:
    out = rtedge("--version")
    assert out.returncode == 0
    assert out.stdout.strip() == f"rtedge {__version__}"


@pytest.mark.parametrize("command", ["run", "check"])
def test_config_error_exits_78_with_one_line(tmp_path: Path, command: str) -> None:
    cfg = tmp_path / "bad.toml"
    cfg.write_text('[audio]\nperiod_ms = "twenty"\n')
    out = rtedge(command, "--config", str(cfg))
    assert out.returncode == 78
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    assert lines[0].startswith("rtedge: config error: audio.period_ms: ")
    assert "Traceback" not in out.stderr


def test_env_error_also_exits_78(tmp_path: Path) -> None:
    cfg = tmp_path / "ok.toml"
    cfg.write_text("")
    out = rtedge("check", "--config", str(cfg), env={"RTEDGE_PTT__MODE": "sticky"})
    assert out.returncode == 78
    assert out.stderr.strip().startswith("rtedge: config error: ptt.mode: ")


def test_check_masks_secrets_and_names_what_it_would_use(tmp_path: Path) -> None:
    keyfile = tmp_path / "key"
    keyfile.write_text(SECRET)
    cfg = tmp_path / "rtedge.toml"
    cfg.write_text(
        f'[realtime]\napi_key_file = "{keyfile}"\n[display]\nbackend = "mjpeg"\n'
        '[health]\nlisten = "127.0.0.1:9999"\n'
    )
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "realtime.api_key").write_text(SECRET + "-cred")
    # devices that work: the null plugin
    conf = tmp_path / "asound.conf"
    conf.write_text("pcm.!default { type null }\nctl.!default { type null }\n")
    alsa = {"ALSA_CONFIG_PATH": str(conf)}
    for env in ({}, {"CREDENTIALS_DIRECTORY": str(creds)}, {"RTEDGE_REALTIME__API_KEY": SECRET}):
        out = rtedge("check", "--config", str(cfg), env=env | alsa)
        assert out.returncode == 0, out.stderr
        assert SECRET not in out.stdout + out.stderr
        assert '"api_key": "********"' in out.stdout
    assert "display: MJPEG at http://127.0.0.1:9999/avatar.mjpeg" in out.stdout
    assert "capture:" in out.stdout and "playback:" in out.stdout


def test_check_fails_with_69_naming_a_device_that_does_not_open(tmp_path: Path) -> None:
    conf = tmp_path / "asound.conf"
    conf.write_text("pcm.!default { type null }\nctl.!default { type null }\n")
    out = rtedge(
        "check",
        env={
            "ALSA_CONFIG_PATH": str(conf),
            "RTEDGE_REALTIME__API_KEY": SECRET,
            "RTEDGE_AUDIO__CAPTURE_DEVICE": "rtedge_no_such_mic",
        },
    )
    assert out.returncode == 69, out.stdout + out.stderr
    assert "capture: error: rtedge_no_such_mic" in out.stdout
    assert "playback: ok" in out.stdout
    assert out.stderr.strip().endswith("rtedge: device check failed: capture")
    assert SECRET not in out.stdout + out.stderr


def test_devices_lists_pcms(tmp_path: Path) -> None:
    conf = tmp_path / "asound.conf"
    conf.write_text(
        'pcm.rtedge_test_pcm { type null hint { show on description "test" } }\n'
        "ctl.!default { type null }\n"
    )
    out = rtedge("devices", env={"ALSA_CONFIG_PATH": str(conf)})
    assert out.returncode == 0, out.stderr
    assert "rtedge_test_pcm" in out.stdout


def test_status_of_a_daemon_that_is_not_running() -> None:
    out = rtedge("status", "--url", "http://127.0.0.1:9/status")
    assert out.returncode == 69
    assert "cannot reach" in out.stderr


def test_run_without_any_key_is_a_config_error(tmp_path: Path) -> None:
    cfg = tmp_path / "nokey.toml"
    cfg.write_text('[realtime]\nprovider = "openai"\n')
    out = rtedge("run", "--config", str(cfg))
    assert out.returncode == 78
    assert out.stderr.strip().startswith("rtedge: config error: realtime.api_key: not set")
