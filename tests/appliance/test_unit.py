"""systemd/rtedge.service: `systemd-analyze verify` (systemd 252, as on Bookworm) with no output
at all, and the unit's promises checked against the code they depend on."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from rtedge.cli import EX_CONFIG
from rtedge.settings import DEFAULT_CONFIG_PATH, load_settings
from tests.appliance.conftest import (
    REPO,
    UNIT,
    add_system_units,
    make_pi_tree,
    needs_root,
    run_install,
)
from tests.support import scaled

pytestmark = pytest.mark.skipif(
    shutil.which("systemd-analyze") is None, reason="systemd-analyze (package systemd) missing"
)


def parse_unit(text: str) -> dict[str, dict[str, list[str]]]:
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("["):
            current = sections.setdefault(line.strip("[]"), {})
            continue
        key, _, value = line.partition("=")
        current.setdefault(key.strip(), []).append(value.strip())
    return sections


UNIT_TEXT = UNIT.read_text()
SERVICE = parse_unit(UNIT_TEXT)["Service"]
UNIT_SECTION = parse_unit(UNIT_TEXT)["Unit"]


def one(key: str) -> str:
    values = SERVICE[key]
    assert len(values) == 1, (key, values)
    return values[0]


def verify(root: Path, unit: str = "rtedge.service") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["systemd-analyze", "verify", f"--root={root}", unit],
        capture_output=True,
        text=True,
        timeout=scaled(60),
        env={**os.environ, "SYSTEMD_LOG_COLOR": "0"},
    )


def put_exec_start(root: Path) -> Path:
    """A real executable where ExecStart points: it runs this checkout's rtedge."""
    exe = root / one("ExecStart").split()[0].lstrip("/")
    exe.parent.mkdir(parents=True, exist_ok=True)
    exe.write_text(f'#!/bin/sh\nPYTHONPATH="{REPO}" exec "{sys.executable}" -m rtedge "$@"\n')
    exe.chmod(0o755)
    return exe


@pytest.fixture
def installed_root(tmp_path: Path) -> Path:
    """The tree install-pi makes (without its venv), plus Debian's units and the ExecStart path."""
    root = make_pi_tree(tmp_path / "root")
    add_system_units(root)
    if os.geteuid() == 0:
        run_install("--root", str(root), "--no-venv", "--api-key-file", "/dev/null")
    else:
        dest = root / "etc" / "systemd" / "system" / "rtedge.service"
        dest.write_text(UNIT_TEXT)
    put_exec_start(root)
    return root


def test_verify_passes_without_a_single_warning(installed_root: Path) -> None:
    proc = verify(installed_root)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == "" and proc.stdout == "", proc.stderr + proc.stdout


def test_verify_would_catch_an_unknown_key_and_a_missing_binary(installed_root: Path) -> None:
    # The lint above is only worth something if verify speaks up here: unknown keys are a
    # warning with exit 0 (so the test reads stderr), a missing ExecStart binary is an error.
    broken = installed_root / "etc" / "systemd" / "system" / "broken.service"
    broken.write_text(UNIT_TEXT.replace("LockPersonality=yes", "LockPersonality=yes\nProtectX=yes"))
    proc = verify(installed_root, "broken.service")
    assert "Unknown key 'ProtectX'" in proc.stderr
    (installed_root / one("ExecStart").split()[0].lstrip("/")).unlink()
    proc = verify(installed_root)
    assert proc.returncode != 0 and "is not executable" in proc.stderr


def test_lifecycle_settings_match_the_daemon() -> None:
    assert one("Type") == "notify"
    assert one("NotifyAccess") == "main"
    assert one("Restart") == "always"
    # A config error exits EX_CONFIG and must not restart-loop.
    assert one("RestartPreventExitStatus") == str(EX_CONFIG)
    argv = one("ExecStart").split()
    assert argv[:2] == ["/opt/rtedge/venv/bin/rtedge", "run"]
    assert argv[argv.index("--config") + 1] == str(DEFAULT_CONFIG_PATH)
    # Watchdog: the daemon pings at half the period; stop: it promises an exit within 5 s.
    assert re.fullmatch(r"\d+s", one("WatchdogSec")) and int(one("WatchdogSec")[:-1]) >= 10
    assert int(one("TimeoutStopSec").rstrip("s")) > 5
    assert int(one("RestartSec").rstrip("s")) >= 1
    assert "StartLimitIntervalSec" in UNIT_SECTION and "StartLimitBurst" in UNIT_SECTION
    for target in ("network-online.target", "sound.target"):
        assert target in " ".join(UNIT_SECTION["After"])
        assert target in " ".join(UNIT_SECTION["Wants"])


def test_identity_devices_and_hardening_present() -> None:
    assert one("User") == "rtedge"
    assert set(one("SupplementaryGroups").split()) == {"audio", "gpio", "video"}
    assert one("ConfigurationDirectory") == "rtedge"
    assert one("CapabilityBoundingSet") == ""
    assert one("DevicePolicy") == "closed"
    devices = {v.split()[0] for v in SERVICE["DeviceAllow"]}
    assert devices == {"char-alsa", "char-gpiochip", "char-fb"}
    assert set(one("RestrictAddressFamilies").split()) == {
        "AF_UNIX",
        "AF_INET",
        "AF_INET6",
        "AF_NETLINK",
    }
    assert SERVICE["SystemCallFilter"][0] == "@system-service"
    for key in (
        "NoNewPrivileges",
        "ProtectHome",
        "PrivateTmp",
        "ProtectKernelTunables",
        "ProtectKernelModules",
        "ProtectKernelLogs",
        "ProtectControlGroups",
        "LockPersonality",
        "RestrictSUIDSGID",
        "RestrictNamespaces",
    ):
        assert one(key) == "yes", key
    assert one("ProtectSystem") == "strict"
    # cffi callbacks (pyOpenSSL, used by aiortc's DTLS) need W+X memory: test_hardening.py.
    assert one("MemoryDenyWriteExecute") == "no"
    # gpiozero reads /proc/device-tree and /proc/cpuinfo to know the board: never ProcSubset=pid.
    assert "ProcSubset" not in SERVICE
    # lgpio makes FIFOs in its working directory: it must be the (only) writable directory.
    assert one("WorkingDirectory") == "%t/" + one("RuntimeDirectory")
    # Only the audio threads may go real-time, and only with RLIMIT_RTTIME as a leash.
    assert one("RestrictRealtime") == "no" and "LimitRTTIME" in SERVICE
    assert "CPUSchedulingPolicy" not in SERVICE


def test_credential_name_is_what_settings_reads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    name, _, source = one("LoadCredential").partition(":")
    assert source == "/etc/rtedge/api_key"
    creds = tmp_path / "credentials"
    creds.mkdir()
    (creds / name).write_text("sk-from-credential\n")
    config = tmp_path / "rtedge.toml"
    config.write_text("")
    for key in list(os.environ):
        if key.startswith("RTEDGE_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(creds))
    settings = load_settings(config)
    assert settings.realtime.api_key is not None
    assert settings.realtime.api_key.get_secret_value() == "sk-from-credential"


# Every exposure `systemd-analyze security` still reports, and why the daemon must keep it.
ACCEPTED_EXPOSURES = {
    "PrivateNetwork=": "WebRTC to a cloud service and the health endpoint",
    "IPAddressDeny=": "the service's media servers have no fixed addresses",
    "RestrictAddressFamilies=~AF_(INET|INET6)": "HTTPS signaling, WebRTC UDP, health endpoint",
    "RestrictAddressFamilies=~AF_UNIX": "sd_notify and journald",
    "RestrictAddressFamilies=~AF_NETLINK": "aioice -> ifaddr -> getifaddrs()",
    "PrivateDevices=": "ALSA, GPIO and the framebuffer (DeviceAllow= narrows it)",
    "DeviceAllow=": "char-alsa, char-gpiochip, char-fb (char-rtc:r comes from ProtectClock=)",
    "SupplementaryGroups=": "audio, gpio, video own the device nodes",
    "PrivateUsers=": "device access through supplementary groups; kept simple on purpose",
    "RootDirectory=/RootImage=": "a venv under /opt, no image",
    "ProcSubset=": "gpiozero reads /proc/device-tree and /proc/cpuinfo",
    "MemoryDenyWriteExecute=": "cffi callbacks (pyOpenSSL in aiortc's DTLS) need W+X memory",
    "RestrictRealtime=": "SCHED_FIFO for the ALSA threads, leashed by LimitRTTIME=",
    "SystemCallFilter=~@resources": "sched_setscheduler for those threads",
}


def test_offline_security_review(installed_root: Path) -> None:
    proc = subprocess.run(
        [
            "systemd-analyze",
            "security",
            "--offline=yes",
            f"--root={installed_root}",
            "rtedge.service",
        ],
        capture_output=True,
        text=True,
        timeout=scaled(60),
    )
    assert proc.stderr == "", proc.stderr
    exposed = {
        line.split()[1] for line in proc.stdout.splitlines() if line.lstrip().startswith("✗")
    }
    assert exposed == set(ACCEPTED_EXPOSURES), proc.stdout
    level = re.search(r"Overall exposure level for rtedge.service: ([\d.]+)", proc.stdout)
    assert level is not None and float(level.group(1)) <= 2.0, proc.stdout


@needs_root
def test_enabled_by_install_pi(installed_root: Path) -> None:
    link = installed_root / "etc/systemd/system/multi-user.target.wants/rtedge.service"
    assert os.readlink(link) == "/etc/systemd/system/rtedge.service"
    assert parse_unit(UNIT_TEXT)["Install"]["WantedBy"] == ["multi-user.target"]
