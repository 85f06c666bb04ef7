"""scripts/install-pi --root DIR: the tree it makes, a second run that changes nothing, and
--uninstall taking back what it added. Real useradd/groupadd/usermod (--prefix) and real
`systemctl --root enable`; only the venv (pip from the network) is left out (--no-venv)."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.appliance.conftest import (
    INSTALL_PI,
    REPO,
    listing,
    make_pi_tree,
    needs_root,
    run_install,
)
from tests.support import scaled

pytestmark = needs_root
KEY = "sk-test-appliance-0123456789"


def entries(path: Path) -> dict[str, list[str]]:
    return {line.split(":")[0]: line.split(":") for line in path.read_text().splitlines()}


def members(root: Path, group: str) -> set[str]:
    return set(filter(None, entries(root / "etc/group")[group][3].split(",")))


def mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def is_backup(rel: str) -> bool:
    # passwd-, group-, shadow-, gshadow-: the backups useradd/userdel keep, as on any system.
    return rel.startswith("etc/") and rel.endswith("-") and "/" not in rel[4:]


def test_install_makes_the_tree(pi_tree: Path, key_file: Path) -> None:
    out = run_install("--root", str(pi_tree), "--no-venv", "--api-key-file", str(key_file))
    assert KEY not in out.stdout + out.stderr
    unit = pi_tree / "etc/systemd/system/rtedge.service"
    assert unit.read_bytes() == (REPO / "systemd/rtedge.service").read_bytes()
    assert mode(unit) == 0o644 and unit.stat().st_uid == 0
    wants = pi_tree / "etc/systemd/system/multi-user.target.wants/rtedge.service"
    assert os.readlink(wants) == "/etc/systemd/system/rtedge.service"
    config = pi_tree / "etc/rtedge/rtedge.toml"
    assert config.read_bytes() == (REPO / "config/rtedge.toml").read_bytes()
    assert mode(config) == 0o644
    key = pi_tree / "etc/rtedge/api_key"
    assert key.read_text().strip() == KEY
    st = key.stat()
    assert (mode(key), st.st_uid, st.st_gid) == (0o600, 0, 0)
    assert not list((pi_tree / "etc/rtedge").glob(".api_key*"))  # no temp file left
    user = entries(pi_tree / "etc/passwd")["rtedge"]
    uid, gid = int(user[2]), int(user[3])
    assert 100 <= uid < 1000, "a system user"
    assert user[5:] == ["/nonexistent", "/usr/sbin/nologin"]
    assert entries(pi_tree / "etc/group")["rtedge"][2] == str(gid)
    assert "rtedge" in entries(pi_tree / "etc/shadow")
    for group in ("audio", "gpio", "video"):
        assert members(pi_tree, group) == {"pi", "rtedge"}, group
    assert entries(pi_tree / "etc/passwd")["pi"][2] == "1000"  # the rest untouched
    rule = pi_tree / "etc/udev/rules.d/60-rtedge-gpio.rules"
    assert 'KERNEL=="gpiochip*", GROUP="gpio"' in rule.read_text()
    assert not (pi_tree / "opt/rtedge").exists()  # --no-venv
    assert os.readlink(pi_tree / "usr/local/bin/rtedge") == "/opt/rtedge/venv/bin/rtedge"


def test_second_run_changes_nothing(pi_tree: Path, key_file: Path) -> None:
    run_install("--root", str(pi_tree), "--no-venv", "--api-key-file", str(key_file))
    first = listing(pi_tree)
    again = run_install("--root", str(pi_tree), "--no-venv", "--api-key-file", str(key_file))
    assert listing(pi_tree) == first
    assert "unit: unchanged" in again.stdout and "API key: unchanged" in again.stdout
    run_install("--root", str(pi_tree), "--no-venv")  # no key given: the one there is kept
    assert listing(pi_tree) == first


def test_existing_config_kept_and_key_replaced(pi_tree: Path, tmp_path: Path) -> None:
    conf_dir = pi_tree / "etc/rtedge"
    conf_dir.mkdir(parents=True)
    (conf_dir / "rtedge.toml").write_text("[ptt]\ngpio_pin = 27\n")
    (conf_dir / "api_key").write_text("old\n")
    (conf_dir / "api_key").chmod(0o644)  # too open: install-pi tightens it
    run_install("--root", str(pi_tree), "--no-venv")
    assert (conf_dir / "rtedge.toml").read_text() == "[ptt]\ngpio_pin = 27\n"
    assert (conf_dir / "api_key").read_text() == "old\n" and mode(conf_dir / "api_key") == 0o600
    # A new key from stdin ("-") replaces the old one, and is never printed.
    out = run_install("--root", str(pi_tree), "--no-venv", "--api-key-file", "-", input="sk-new\n")
    assert (conf_dir / "api_key").read_text() == "sk-new\n" and mode(conf_dir / "api_key") == 0o600
    assert "sk-new" not in out.stdout + out.stderr


def test_no_key_and_no_terminal_leaves_an_empty_key_file(pi_tree: Path) -> None:
    # systemd 252 refuses to start a unit whose LoadCredential= file is missing.
    run_install("--root", str(pi_tree), "--no-venv")
    key = pi_tree / "etc/rtedge/api_key"
    assert key.read_bytes() == b"" and mode(key) == 0o600


def test_empty_directory_gets_minimal_user_files(tmp_path: Path) -> None:
    root = tmp_path / "bare"
    root.mkdir()
    run_install("--root", str(root), "--no-venv")
    groups = entries(root / "etc/group")
    assert {"root", "audio", "gpio", "video", "rtedge"} <= set(groups)
    assert "rtedge" in entries(root / "etc/passwd")
    for group in ("audio", "gpio", "video"):
        assert members(root, group) == {"rtedge"}


def test_uninstall_takes_back_what_it_added(pi_tree: Path, key_file: Path) -> None:
    before = listing(pi_tree, skip=is_backup)
    run_install("--root", str(pi_tree), "--no-venv", "--api-key-file", str(key_file))
    (pi_tree / "opt/rtedge/venv/bin").mkdir(parents=True)  # stands for the venv
    out = run_install("--root", str(pi_tree), "--uninstall")
    after = listing(pi_tree, skip=is_backup)
    kept = {"etc/rtedge", "etc/rtedge/rtedge.toml"}
    assert set(after) - set(before) == kept, out.stdout
    assert {k: v for k, v in after.items() if k not in kept} == before  # passwd, group restored
    assert "kept /etc/rtedge/rtedge.toml" in out.stdout
    run_install("--root", str(pi_tree), "--uninstall")  # again: nothing left to do, no error
    run_install("--root", str(pi_tree), "--purge")
    assert listing(pi_tree, skip=is_backup) == before


def test_unknown_argument_and_bad_root_fail(tmp_path: Path) -> None:
    proc = run_install("--frobnicate", check=False)
    assert proc.returncode != 0 and "unknown argument" in proc.stderr
    proc = run_install("--root", str(tmp_path / "missing"), check=False)
    assert proc.returncode != 0 and "no such directory" in proc.stderr


@pytest.mark.skipif(shutil.which("shellcheck") is None, reason="shellcheck (apt) missing")
def test_shellcheck_clean() -> None:
    proc = subprocess.run(["shellcheck", str(INSTALL_PI)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout


@pytest.mark.slow
@pytest.mark.skipif(
    os.environ.get("RTEDGE_TEST_VENV") != "1",
    reason="creates a real venv with pip from the package index (~20 s warm); RTEDGE_TEST_VENV=1",
)
def test_install_with_a_real_venv(tmp_path: Path) -> None:
    root = make_pi_tree(tmp_path / "root")
    run_install("--root", str(root))
    exe = root / "opt/rtedge/venv/bin/rtedge"
    proc = subprocess.run(
        [str(exe), "--version"], capture_output=True, text=True, timeout=scaled(60)
    )
    assert proc.returncode == 0 and proc.stdout.startswith("rtedge "), proc.stderr


LIVE_STUBS = {
    # The service manager and the package manager cannot run here: these record the calls.
    "systemctl": """#!/bin/sh
echo "systemctl $*" >> "$STUBS/calls.log"
case "$1" in
  is-enabled) [ -L /etc/systemd/system/multi-user.target.wants/rtedge.service ]; exit $? ;;
  is-active) [ -e "$STUBS/active" ]; exit $? ;;
  restart) touch "$STUBS/active" ;;
  enable) mkdir -p /etc/systemd/system/multi-user.target.wants
          ln -sf /etc/systemd/system/rtedge.service \\
            /etc/systemd/system/multi-user.target.wants/rtedge.service ;;
  disable) rm -f /etc/systemd/system/multi-user.target.wants/rtedge.service ;;
esac
exit 0
""",
    "udevadm": '#!/bin/sh\necho "udevadm $*" >> "$STUBS/calls.log"\n',
    "dpkg-query": '#!/bin/sh\nprintf "install ok installed"\n',
    "apt-get": '#!/bin/sh\necho "apt-get $*" >> "$STUBS/calls.log"\nexit 1\n',
}

# /run/systemd/system is how install-pi (like sd_booted()) tells that systemd is the running
# init: BOOTED=1 makes it, in the overlay of /run, whatever this machine's init is.
OVERLAY = """
set -e
for d in etc opt usr/local run; do
  mkdir -p "$OV/$d/up" "$OV/$d/work"
  mount -t overlay overlay -o "lowerdir=/$d,upperdir=$OV/$d/up,workdir=$OV/$d/work" "/$d"
done
if [ -n "$BOOTED" ]; then mkdir -p /run/systemd/system; else rm -rf /run/systemd/system; fi
# A machine that has rtedge installed already (the arm64 root of scripts/test-arm64): the first
# run starts from a system without it, in the overlay.
if [ ! -e "$OV/.clean" ]; then
  if [ -e /etc/systemd/system/rtedge.service ] || grep -q '^rtedge:' /etc/passwd; then
    bash "$INSTALL_PI" --uninstall --purge >/dev/null
    rm -f "$STUBS/calls.log"
  fi
  touch "$OV/.clean"
fi
"$@"
"""


def gone(path: Path) -> bool:
    """Absent from an overlay's upper dir: never there, or a whiteout (where the lower had it)."""
    return not path.exists() or path.is_char_device()


def live_rig(tmp_path: Path, *, booted: bool) -> tuple[Callable[..., str], Callable[[], list[str]]]:
    # install-pi on "/" itself (the path a Pi takes), with /etc, /opt, /usr/local and /run
    # overlaid in a private mount namespace so that nothing reaches this machine; systemctl,
    # udevadm and apt are stubs that record what they were asked.
    if subprocess.run(["unshare", "-m", "true"], capture_output=True).returncode != 0:
        pytest.skip("no mount namespaces here")
    stubs = tmp_path / "stubs"
    stubs.mkdir()
    for name, text in LIVE_STUBS.items():
        (stubs / name).write_text(text)
        (stubs / name).chmod(0o755)
    env = {
        **os.environ,
        "PATH": f"{stubs}:{os.environ['PATH']}",
        "STUBS": str(stubs),
        "OV": str(tmp_path / "ov"),
        "BOOTED": "1" if booted else "",
        "INSTALL_PI": str(INSTALL_PI),
    }

    def live(*args: str) -> str:
        proc = subprocess.run(
            ["unshare", "--mount", "--propagation", "private", "bash", "-c", OVERLAY, "sh"]
            + ["bash", str(INSTALL_PI), "--no-venv", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=scaled(60),
            stdin=subprocess.DEVNULL,
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr
        return proc.stdout

    def calls() -> list[str]:
        log = stubs / "calls.log"
        lines = log.read_text().splitlines() if log.exists() else []
        log.unlink(missing_ok=True)
        return lines

    return live, calls


def test_live_install_on_an_overlay_of_this_system(tmp_path: Path, key_file: Path) -> None:
    live, calls = live_rig(tmp_path, booted=True)
    live("--api-key-file", str(key_file))
    assert calls() == [
        "udevadm control --reload",
        "udevadm trigger --subsystem-match=gpio",
        "systemctl daemon-reload",
        "systemctl is-enabled --quiet rtedge.service",
        "systemctl enable --quiet rtedge.service",
        "systemctl restart rtedge.service",
    ]
    etc = tmp_path / "ov/etc/up"  # what the run wrote into /etc
    assert (etc / "systemd/system/rtedge.service").read_bytes() == (
        REPO / "systemd/rtedge.service"
    ).read_bytes()
    assert (etc / "rtedge/api_key").read_text().strip() == KEY
    assert mode(etc / "rtedge/api_key") == 0o600
    assert "rtedge" in entries(etc / "passwd")
    link = tmp_path / "ov/usr/local/up/bin/rtedge"
    assert os.readlink(link) == "/opt/rtedge/venv/bin/rtedge"

    out = live()  # again: nothing changed, so the running daemon is left alone
    assert calls() == [
        "systemctl daemon-reload",
        "systemctl is-enabled --quiet rtedge.service",
        "systemctl is-active --quiet rtedge.service",
    ]
    assert "unit: unchanged" in out

    live("--uninstall")
    assert calls() == [
        "systemctl cat rtedge.service",
        "systemctl disable --now rtedge.service",
        "systemctl daemon-reload",
    ]
    assert gone(etc / "systemd/system/rtedge.service")
    assert gone(etc / "rtedge/api_key") and (etc / "rtedge/rtedge.toml").exists()
    assert "rtedge" not in entries(etc / "passwd")


def test_live_install_where_systemd_is_not_running(tmp_path: Path, key_file: Path) -> None:
    # An image build, a chroot or a container: everything installed and the unit enabled
    # offline, no call to a service manager that is not there, and exit 0 (live() checks it).
    live, calls = live_rig(tmp_path, booted=False)
    out = live("--api-key-file", str(key_file))
    assert calls() == ["systemctl enable rtedge.service"]
    assert "unit: enabled" in out and "systemd is not running here" in out
    etc = tmp_path / "ov/etc/up"
    assert (etc / "systemd/system/multi-user.target.wants/rtedge.service").is_symlink()
    assert (etc / "rtedge/api_key").read_text().strip() == KEY

    out = live()  # again: nothing to do
    assert calls() == []
    assert "unit: unchanged" in out and "API key: keeping" in out

    live("--uninstall")
    assert calls() == ["systemctl disable rtedge.service"]
    assert gone(etc / "systemd/system/rtedge.service")
