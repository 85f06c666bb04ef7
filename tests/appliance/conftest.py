"""Shared pieces for the appliance tests: a Raspberry-Pi-OS-like directory tree, install-pi runs
and a listing of a tree (type, mode, owner, content hash, link target) to compare runs."""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support import scaled

REPO = Path(__file__).resolve().parents[2]
INSTALL_PI = REPO / "scripts" / "install-pi"
UNIT = REPO / "systemd" / "rtedge.service"
SYSTEM_UNITS = Path("/usr/lib/systemd/system")

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="install-pi and useradd need root")

# What a fresh Raspberry Pi OS Bookworm has: the default user in audio/video/gpio, shadow files.
PI_PASSWD = "root:x:0:0:root:/root:/bin/bash\npi:x:1000:1000:,,,:/home/pi:/bin/bash\n"
PI_GROUP = "root:x:0:\nshadow:x:42:\naudio:x:29:pi\nvideo:x:44:pi\npi:x:1000:\ngpio:x:997:pi\n"
PI_SHADOW = "root:*:19700:0:99999:7:::\npi:!:19700:0:99999:7:::\n"
PI_GSHADOW = "root:*::\nshadow:*::\naudio:*::pi\nvideo:*::pi\npi:!::\ngpio:!::pi\n"


def make_pi_tree(root: Path) -> Path:
    etc = root / "etc"
    wants = etc / "systemd" / "system" / "multi-user.target.wants"
    wants.mkdir(parents=True)
    (wants / "ssh.service").symlink_to("/lib/systemd/system/ssh.service")
    (etc / "udev" / "rules.d").mkdir(parents=True)
    (root / "opt").mkdir()
    (root / "usr" / "local" / "bin").mkdir(parents=True)
    for name, text, mode in (
        ("passwd", PI_PASSWD, 0o644),
        ("group", PI_GROUP, 0o644),
        ("shadow", PI_SHADOW, 0o640),
        ("gshadow", PI_GSHADOW, 0o640),
    ):
        (etc / name).write_text(text)
        (etc / name).chmod(mode)
    return root


def add_system_units(root: Path) -> None:
    """Debian's own units under ROOT, so `systemd-analyze verify --root` finds sysinit.target &c.
    (a symlinked directory does not work: verify chases links inside the root)."""
    dest = root / "usr" / "lib" / "systemd" / "system"
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copytree(SYSTEM_UNITS, dest, symlinks=True)
    if not (root / "lib").exists():
        (root / "lib").symlink_to("usr/lib")


def listing(root: Path, *, skip: Callable[[str], bool] = lambda _: False) -> dict[str, str]:
    """path -> 'type mode uid:gid sha256-or-target' for everything under root."""
    out: dict[str, str] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            rel = str(path.relative_to(root))
            if skip(rel):
                continue
            st = path.lstat()
            if stat.S_ISLNK(st.st_mode):
                what = "l -> " + os.readlink(path)
            elif stat.S_ISDIR(st.st_mode):
                what = "d"
            else:
                what = "f " + hashlib.sha256(path.read_bytes()).hexdigest()[:16]
            out[rel] = f"{what} {stat.S_IMODE(st.st_mode):o} {st.st_uid}:{st.st_gid}"
    return out


def run_install(
    *args: str, input: str | None = None, check: bool = True
) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        ["bash", str(INSTALL_PI), *args],
        input=input if input is not None else "",
        capture_output=True,
        text=True,
        timeout=scaled(60),
    )
    if check:
        assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


@pytest.fixture
def pi_tree(tmp_path: Path) -> Path:
    return make_pi_tree(tmp_path / "root")


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    path = tmp_path / "key.txt"
    path.write_text("sk-test-appliance-0123456789\n")
    return path
