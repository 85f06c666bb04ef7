"""The command line as an operator meets it: real ``python -m rtedge`` processes."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from rtedge import __version__
from tests.support import base_env, free_port, http, scaled, wait_for

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


def test_devices_says_what_null_is() -> None:
    # The system's own ALSA config, as a first run sees it: with no sound card, only "null".
    out = rtedge("devices")
    assert out.returncode == 0, out.stderr
    assert "  null\n      Discard all samples (playback) or generate zero samples" in out.stdout
    if out.stdout.startswith("sound cards: none found\n"):
        assert "(no sound card found: null is ALSA's stand-in that discards" in out.stdout
    check = rtedge("check", env={"RTEDGE_REALTIME__API_KEY": "k"})
    assert "ALSA PCMs:\n  null\n      Discard all samples" in check.stdout, check.stdout


def test_check_on_the_demo_config_opens_the_demo_devices() -> None:
    root = Path(__file__).resolve().parents[1]
    out = rtedge("check", "--config", str(root / "config" / "demo.toml"))
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.startswith("demo devices: rtedge_mic and rtedge_speaker exist while")
    assert "capture: ok: rtedge_mic, 48000 Hz, 1 ch" in out.stdout
    assert "playback: ok: rtedge_speaker, 48000 Hz, 2 ch" in out.stdout
    assert "  rtedge_mic\n      rtedge demo microphone" in out.stdout


def test_check_never_hangs_on_a_device_that_blocks(tmp_path: Path) -> None:
    # A file-plugin mic whose FIFO has no writer blocks in open() for good: it used to hang.
    fifo = tmp_path / "mic.fifo"
    os.mkfifo(fifo)
    conf = tmp_path / "asound.conf"
    conf.write_text(
        f'pcm.fifomic {{ type file slave.pcm {{ type null }} file "/dev/null" infile "{fifo}" '
        'format "raw" }\npcm.!default { type null }\nctl.!default { type null }\n'
    )
    env = {"ALSA_CONFIG_PATH": str(conf), "RTEDGE_REALTIME__API_KEY": "k"}
    out = rtedge("check", env=env | {"RTEDGE_AUDIO__CAPTURE_DEVICE": "fifomic"})
    assert out.returncode == 69, out.stdout + out.stderr
    assert "capture: error: fifomic, 48000 Hz, 1 ch: no answer within 3 s (a device" in out.stdout
    assert "playback: ok" in out.stdout


def test_check_warns_with_the_shutdown_date_of_a_deprecated_model(tmp_path: Path) -> None:
    conf = tmp_path / "asound.conf"
    conf.write_text("pcm.!default { type null }\nctl.!default { type null }\n")
    env = {"ALSA_CONFIG_PATH": str(conf), "RTEDGE_REALTIME__API_KEY": SECRET}
    out = rtedge("check", env=env | {"RTEDGE_REALTIME__MODEL": "gpt-realtime"})
    assert out.returncode == 0, out.stdout + out.stderr
    assert "realtime.model 'gpt-realtime' is deprecated: shutdown announced for 2027-01-20" in (
        out.stderr
    )
    out = rtedge("check", env=env)  # the default model is current
    assert out.returncode == 0 and "deprecated" not in out.stderr, out.stderr


def test_devices_lists_pcms(tmp_path: Path) -> None:
    conf = tmp_path / "asound.conf"
    conf.write_text(
        'pcm.rtedge_test_pcm { type null hint { show on description "test" } }\n'
        "ctl.!default { type null }\n"
    )
    out = rtedge("devices", env={"ALSA_CONFIG_PATH": str(conf)})
    assert out.returncode == 0, out.stderr
    assert "rtedge_test_pcm" in out.stdout


def test_status_of_a_daemon_that_is_not_running(tmp_path: Path) -> None:
    port = free_port()
    cfg = tmp_path / "rtedge.toml"
    cfg.write_text(f'[health]\nlisten = "127.0.0.1:{port}"\n')
    out = rtedge("status", "--config", str(cfg))
    assert out.returncode == 69
    assert out.stdout == ""
    assert out.stderr == (
        f"rtedge: cannot reach http://127.0.0.1:{port}/status: nothing is listening there: "
        "is the daemon running? (systemctl status rtedge)\n"
    )


def test_run_without_any_key_is_a_config_error(tmp_path: Path) -> None:
    cfg = tmp_path / "nokey.toml"
    cfg.write_text('[realtime]\nprovider = "openai"\n')
    out = rtedge("run", "--config", str(cfg))
    assert out.returncode == 78
    assert out.stderr.strip().startswith("rtedge: config error: realtime.api_key: not set")


def test_an_empty_device_name_is_a_config_error(tmp_path: Path) -> None:
    cfg = tmp_path / "empty.toml"
    cfg.write_text('[realtime]\napi_key = "k"\n[audio]\ncapture_device = ""\n')
    for command in ("check", "run"):
        out = rtedge(command, "--config", str(cfg))
        assert out.returncode == 78, out.stdout + out.stderr
        assert out.stderr.strip() == "rtedge: config error: audio.capture_device: must not be empty"


def null_devices(tmp_path: Path) -> dict[str, str]:
    """ALSA with no sound card: the default PCM is the null plugin (it always works)."""
    conf = tmp_path / "asound.conf"
    conf.write_text("pcm.!default { type null }\nctl.!default { type null }\n")
    return {"ALSA_CONFIG_PATH": str(conf), "RTEDGE_REALTIME__API_KEY": "k"}


@pytest.mark.parametrize(
    ("listen", "reason"),
    [
        (
            "taken",
            "address already in use (another program is listening there; is rtedge "
            "already running? rtedge status asks it)",
        ),
        (
            "192.0.2.1:0",
            "cannot assign requested address (no network interface of this machine "
            "has that address)",
        ),
    ],
)
def test_run_that_cannot_listen_says_which_setting_in_one_line(
    tmp_path: Path, listen: str, reason: str
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        if listen == "taken":
            listen = f"127.0.0.1:{taken.getsockname()[1]}"
        env = null_devices(tmp_path) | {"RTEDGE_HEALTH__LISTEN": listen}
        out = rtedge("run", env=env)
    assert out.returncode == 1
    lines = out.stderr.strip().splitlines()
    # Nothing was started, so nothing is "stopping": the one line is the whole story.
    assert len(lines) == 1, out.stderr
    assert f"ERROR   rtedge: cannot start: health.listen {listen}: {reason}" in lines[0]


@pytest.mark.skipif(
    Path("/proc/device-tree/model").exists(), reason="a board with GPIO: the button would open"
)
def test_a_button_that_cannot_open_is_one_line_and_shows_in_healthz(tmp_path: Path) -> None:
    port = free_port()
    env = base_env() | null_devices(tmp_path) | {"RTEDGE_HEALTH__LISTEN": f"127.0.0.1:{port}"}
    env.pop("GPIOZERO_PIN_FACTORY", None)  # gpiozero's own search, as on a first run
    log = tmp_path / "daemon.log"
    with log.open("wb") as fh:
        proc = subprocess.Popen(
            [sys.executable, "-m", "rtedge", "run"], env=env, stdout=fh, stderr=subprocess.STDOUT
        )
    try:
        body = wait_for(
            lambda: http("GET", f"http://127.0.0.1:{port}/healthz")[1], 30, "the health endpoint"
        )
        detail = "GPIO17: no GPIO pin library works on this machine (not a Raspberry Pi, or lgpio "
        assert f"button unavailable: {detail}missing)" in body["problems"], body
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
    text = log.read_text()
    assert "PinFactoryFallback" not in text and "warnings.warn" not in text, text
    button = [line for line in text.splitlines() if "button" in line]
    assert len(button) == 1, text
    assert 'push-to-talk over HTTP still works ([ptt] gpio_pin = "" runs without' in button[0]


def test_check_reports_whether_the_hands_free_libraries_load(tmp_path: Path) -> None:
    out = rtedge("check", env={"RTEDGE_REALTIME__API_KEY": "k", "RTEDGE_WAKE__ENABLED": "true"})
    lines = out.stdout.splitlines()
    assert any(line.startswith("wake: ok (pymicro-wakeword") for line in lines), out.stdout
    assert any(
        line.startswith("aec: ok (pywebrtc-audio") and "not enabled" in line for line in lines
    )
    assert any(line.startswith("vad: ok") and "not enabled" not in line for line in lines)
