"""Run a command under the seccomp filters that systemd builds for rtedge.service, without
systemd: ``python sandbox.py [--kill] [--mdwe] [--families AF_X,AF_Y] -- ARGV...``.

systemd implements these unit settings with seccomp, and so does this launcher, through the same
libseccomp (ctypes), as separate stacked filters like systemd's. The values are read from
systemd/rtedge.service itself:

* ``SystemCallFilter=`` (allow list, then ``~`` removals): everything else fails with EPERM
  (``SystemCallErrorNumber=EPERM``); sets are expanded by ``systemd-analyze syscall-filter``.
* ``RestrictAddressFamilies=``: socket() of any other family fails with EAFNOSUPPORT
  (``--families`` overrides the list).
* ``MemoryDenyWriteExecute=yes`` (or ``--mdwe``): mmap() with PROT_WRITE|PROT_EXEC,
  mprotect()/pkey_mprotect() adding PROT_EXEC, shmat() with SHM_EXEC fail with EPERM
  (systemd 252's rules exactly).
* ``NoNewPrivileges=yes``.

``--kill`` turns every refusal into SIGSYS, so a test sees any call the unit would refuse instead
of a quietly handled error. The namespace/mount/device settings are not emulated here.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import mmap
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

UNIT = Path(__file__).resolve().parents[2] / "systemd" / "rtedge.service"
AF_MAX = 46
SHM_EXEC = 0o100000

SCMP_ACT_KILL_PROCESS = 0x80000000
SCMP_ACT_ALLOW = 0x7FFF0000
SCMP_CMP_EQ = 4
SCMP_CMP_GT = 6
SCMP_CMP_MASKED_EQ = 7


def SCMP_ACT_ERRNO(err: int) -> int:  # noqa: N802  (libseccomp's macro name)
    return 0x00050000 | (err & 0xFFFF)


class ScmpArgCmp(ctypes.Structure):
    _fields_ = [
        ("arg", ctypes.c_uint),
        ("op", ctypes.c_int),
        ("datum_a", ctypes.c_uint64),
        ("datum_b", ctypes.c_uint64),
    ]


def expand(group: str, seen: set[str] | None = None) -> set[str]:
    """Syscall names in a systemd syscall group, nested groups expanded."""
    seen = set() if seen is None else seen
    out = subprocess.run(
        ["systemd-analyze", "syscall-filter", group], capture_output=True, text=True, check=True
    ).stdout
    names: set[str] = set()
    for line in out.splitlines()[1:]:
        item = line.strip()
        if not item or item.startswith("#"):
            continue
        if item.startswith("@"):
            if item not in seen:
                seen.add(item)
                names |= expand(item, seen)
        elif re.fullmatch(r"[a-z0-9_]+", item):
            names.add(item)
    return names


def unit_values(key: str, text: str | None = None) -> list[str]:
    """Every value of ``key`` in rtedge.service (or in ``text``), in order."""
    prefix = key + "="
    return [
        line.strip()[len(prefix) :]
        for line in (UNIT.read_text() if text is None else text).splitlines()
        if line.strip().startswith(prefix)
    ]


def names(items: str) -> set[str]:
    out: set[str] = set()
    for item in items.split():
        out |= expand(item) if item.startswith("@") else {item}
    return out


def allowed_syscalls() -> set[str]:
    allowed: set[str] = set()
    for value in unit_values("SystemCallFilter"):
        if value.startswith("~"):
            allowed -= names(value[1:])
        else:
            allowed |= names(value)
    return allowed


def unit_families() -> tuple[int, ...]:
    (value,) = unit_values("RestrictAddressFamilies")
    return tuple(int(getattr(socket, name)) for name in value.split())


def unit_mdwe() -> bool:
    return unit_values("MemoryDenyWriteExecute") == ["yes"]


class Filter:
    def __init__(self, lib: ctypes.CDLL, default: int) -> None:
        self.lib = lib
        self.ctx = lib.seccomp_init(ctypes.c_uint32(default))
        if not self.ctx:
            raise OSError("seccomp_init failed")

    def rule(self, action: int, name: str, *cmps: tuple[int, int, int, int]) -> bool:
        nr = self.lib.seccomp_syscall_resolve_name(name.encode())
        if nr < 0:
            return False  # not a syscall on this architecture
        arr = (ScmpArgCmp * max(1, len(cmps)))(*[ScmpArgCmp(*c) for c in cmps])
        rc = self.lib.seccomp_rule_add_array(self.ctx, ctypes.c_uint32(action), nr, len(cmps), arr)
        if rc < 0:
            raise OSError(-rc, f"seccomp_rule_add {name}: {os.strerror(-rc)}")
        return True

    def load(self) -> None:
        rc = self.lib.seccomp_load(self.ctx)
        if rc < 0:
            raise OSError(-rc, f"seccomp_load: {os.strerror(-rc)}")
        self.lib.seccomp_release(self.ctx)


def apply(kill: bool, mdwe: bool, families: tuple[int, ...]) -> None:
    lib = ctypes.CDLL(ctypes.util.find_library("seccomp") or "libseccomp.so.2", use_errno=True)
    lib.seccomp_init.restype = ctypes.c_void_p
    lib.seccomp_init.argtypes = [ctypes.c_uint32]
    lib.seccomp_rule_add_array.argtypes = [
        ctypes.c_void_p,
        ctypes.c_uint32,
        ctypes.c_int,
        ctypes.c_uint,
        ctypes.c_void_p,
    ]
    lib.seccomp_load.argtypes = [ctypes.c_void_p]
    lib.seccomp_release.argtypes = [ctypes.c_void_p]
    lib.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]

    def deny(err: int) -> int:
        return SCMP_ACT_KILL_PROCESS if kill else SCMP_ACT_ERRNO(err)

    if mdwe:  # MemoryDenyWriteExecute=yes
        wxf = Filter(lib, SCMP_ACT_ALLOW)
        wx = mmap.PROT_WRITE | mmap.PROT_EXEC
        x = mmap.PROT_EXEC
        for name in ("mmap", "mmap2"):
            wxf.rule(deny(errno.EPERM), name, (2, SCMP_CMP_MASKED_EQ, wx, wx))
        for name in ("mprotect", "pkey_mprotect"):
            wxf.rule(deny(errno.EPERM), name, (2, SCMP_CMP_MASKED_EQ, x, x))
        wxf.rule(deny(errno.EPERM), "shmat", (2, SCMP_CMP_MASKED_EQ, SHM_EXEC, SHM_EXEC))
        wxf.load()

    # RestrictAddressFamilies=
    fam = Filter(lib, SCMP_ACT_ALLOW)
    for af in range(AF_MAX):
        if af not in families:
            fam.rule(deny(errno.EAFNOSUPPORT), "socket", (0, SCMP_CMP_EQ, af, 0))
    fam.rule(deny(errno.EAFNOSUPPORT), "socket", (0, SCMP_CMP_GT, AF_MAX - 1, 0))
    fam.load()

    # SystemCallFilter=@system-service ~@privileged, SystemCallErrorNumber=EPERM
    calls = Filter(lib, deny(errno.EPERM))
    for name in sorted(allowed_syscalls()):
        calls.rule(SCMP_ACT_ALLOW, name)
    calls.load()  # libseccomp sets NO_NEW_PRIVS first (NoNewPrivileges=yes)


def main(argv: list[str]) -> None:
    opts = argv[: argv.index("--")]
    cmd = argv[argv.index("--") + 1 :]
    families = unit_families()
    if "--families" in opts:
        chosen = opts[opts.index("--families") + 1].split(",")
        families = tuple(int(getattr(socket, name)) for name in chosen)
    apply(kill="--kill" in opts, mdwe="--mdwe" in opts or unit_mdwe(), families=families)
    os.execvp(cmd[0], cmd)


if __name__ == "__main__":
    main(sys.argv[1:])
