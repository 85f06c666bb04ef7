"""The unit's seccomp-based hardening tried on the real libraries: SystemCallFilter,
RestrictAddressFamilies, NoNewPrivileges (and MemoryDenyWriteExecute, which is off, and why),
applied by tests/appliance/sandbox.py the way systemd applies them. Any call the unit would
refuse kills the probe (--kill), so "passes" means "nothing refused", not "refusals handled"."""

from __future__ import annotations

import ctypes.util
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.appliance.elfcheck import wx_problems

HERE = Path(__file__).resolve().parent
SANDBOX = HERE / "sandbox.py"
PROBE = HERE / "probe_libs.py"

pytestmark = pytest.mark.skipif(
    ctypes.util.find_library("seccomp") is None or shutil.which("systemd-analyze") is None,
    reason="needs libseccomp2 and systemd-analyze",
)


def sandboxed(
    *cmd: str, opts: tuple[str, ...] = (), timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SANDBOX), *opts, "--", *cmd],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def py(code: str, opts: tuple[str, ...] = ()) -> subprocess.CompletedProcess[str]:
    return sandboxed(sys.executable, "-c", code, opts=opts)


def test_sandbox_refuses_what_the_unit_refuses() -> None:
    # The emulation itself: a refused family, a refused syscall, W+X only with --mdwe.
    proc = py(
        "import socket, os, mmap\n"
        "for fam in (socket.AF_PACKET, 31):\n"
        "    try: socket.socket(fam, socket.SOCK_RAW); print('open', fam)\n"
        "    except OSError as e: print('refused', fam, e.errno)\n"
        "socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 0); print('netlink')\n"
        "try: os.chroot('/'); print('chroot')\n"
        "except OSError as e: print('chroot refused', e.errno)\n"
        "mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC); print('wx')\n"
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split("\n")[:5] == [
        "refused 17 97",  # AF_PACKET: EAFNOSUPPORT
        "refused 31 97",  # AF_BLUETOOTH
        "netlink",
        "chroot refused 1",  # @privileged: EPERM
        "wx",  # MemoryDenyWriteExecute is off in the unit
    ]
    proc = py("import os; os.chroot('/')", opts=("--kill",))
    assert proc.returncode == -31  # SIGSYS: --kill makes refusals loud
    proc = py("import mmap; mmap.mmap(-1, 4096, prot=7)", opts=("--mdwe",))
    assert "Operation not permitted" in proc.stderr


def test_daemon_libraries_run_under_the_units_filters(tmp_path: Path) -> None:
    # ALSA, gpiozero, framebuffer memmap, PyAV, sd_notify, journald, aiohttp and a whole aiortc
    # call (ICE over the real interfaces, DTLS, SRTP, Opus, data channel) with nothing refused.
    proc = sandboxed(sys.executable, str(PROBE), str(tmp_path), opts=("--kill",))
    assert proc.returncode == 0 and "probe ok" in proc.stdout, proc.stderr[-3000:]


def test_af_netlink_is_needed_for_ice_gathering(tmp_path: Path) -> None:
    # Without AF_NETLINK, glibc getifaddrs() (ifaddr, used by aioice) fails: no call at all.
    proc = sandboxed(
        sys.executable,
        str(PROBE),
        str(tmp_path),
        opts=("--families", "AF_UNIX,AF_INET,AF_INET6"),
    )
    assert proc.returncode != 0
    assert "ifaddr" in proc.stderr and "Address family not supported" in proc.stderr


def test_memory_deny_write_execute_breaks_dtls_callbacks() -> None:
    # Why the unit says MemoryDenyWriteExecute=no: aiortc's DTLS context sets a verify callback
    # through pyOpenSSL; cffi allocates the callback's trampoline as W+X memory. When this test
    # fails, cffi no longer needs W+X: switch MemoryDenyWriteExecute=yes on in the unit.
    code = (
        "from OpenSSL import SSL\n"
        "ctx = SSL.Context(SSL.DTLS_METHOD)\n"
        "ctx.set_verify(SSL.VERIFY_PEER, lambda *a: True)\n"
        "print('callback ok')\n"
    )
    assert "callback ok" in py(code).stdout
    proc = py(code, opts=("--mdwe",))
    assert "Cannot allocate write+execute memory for ffi.callback()" in proc.stderr


def test_no_loaded_library_needs_an_executable_stack_or_text_relocations(tmp_path: Path) -> None:
    # The other half of MemoryDenyWriteExecute: every ELF object the daemon's libraries map.
    code = (
        "import aiortc, av, numpy, alsaaudio, gpiozero, aiohttp, pydantic_core, OpenSSL\n"
        "import cryptography.hazmat.bindings._rust, prometheus_client\n"
        "from systemd import daemon, journal\n"
        "print(open('/proc/self/maps').read())\n"
    )
    maps = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    objects = {
        Path(line.split()[-1])
        for line in maps.stdout.splitlines()
        if len(line.split()) >= 6 and line.split()[-1].startswith("/")
    }
    objects = {p for p in objects if p.is_file() and (".so" in p.name or "python" in p.name)}
    assert len(objects) > 30, objects
    bad = {str(p): wx_problems(p) for p in objects if wx_problems(p)}
    assert bad == {}


@pytest.mark.skipif(shutil.which("gcc") is None, reason="gcc missing")
def test_elf_check_sees_an_executable_stack(tmp_path: Path) -> None:
    src = tmp_path / "x.c"
    src.write_text("int f(void) { return 1; }\n")
    for name, flags in (("exec.so", ["-Wl,-z,execstack"]), ("plain.so", [])):
        subprocess.run(
            ["gcc", "-shared", "-fPIC", *flags, "-o", str(tmp_path / name), str(src)], check=True
        )
    assert wx_problems(tmp_path / "exec.so") == ["executable stack (PT_GNU_STACK RWE)"]
    assert wx_problems(tmp_path / "plain.so") == []


RT_CHILD = """
import os, resource, sys, threading, time
resource.setrlimit(resource.RLIMIT_RTTIME, (200_000, 500_000))  # LimitRTTIME=200ms:500ms
def audio_like():  # SCHED_FIFO, blocks every 20 ms like an ALSA period: never hits the limit
    os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(10))
    end = time.monotonic() + 1.0
    while time.monotonic() < end:
        time.sleep(0.02)
    print("audio-like thread fine; main thread policy", os.sched_getscheduler(0) != 0,
          os.sched_getscheduler(threading.main_thread().native_id), flush=True)
def runaway():
    os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(10))
    while True:
        pass
t = threading.Thread(target=audio_like); t.start(); t.join()
if sys.argv[1] == "runaway":
    t = threading.Thread(target=runaway, daemon=True); t.start(); t.join(5)
    print("runaway survived", flush=True)
"""


@pytest.mark.skipif(os.geteuid() != 0, reason="SCHED_FIFO here needs root (CAP_SYS_NICE)")
def test_rttime_leash_kills_a_runaway_realtime_thread_only() -> None:
    # LimitRTPRIO= grants SCHED_FIFO without capabilities; LimitRTTIME= is the safety net.
    # The priority grant itself cannot be tried here (hard RLIMIT_RTPRIO is 0 and raising it
    # needs CAP_SYS_RESOURCE); the leash can.
    calm = subprocess.run(
        [sys.executable, "-c", RT_CHILD, "calm"], capture_output=True, text=True, timeout=30
    )
    assert calm.returncode == 0, calm.stderr
    assert "audio-like thread fine; main thread policy True 0" in calm.stdout  # main: OTHER
    runaway = subprocess.run(
        [sys.executable, "-c", RT_CHILD, "runaway"], capture_output=True, text=True, timeout=30
    )
    assert runaway.returncode == -signal.SIGXCPU, (runaway.returncode, runaway.stdout)
    assert "runaway survived" not in runaway.stdout


def test_daemon_call_under_the_units_filters(tmp_path: Path) -> None:
    # The real daemon, under the unit's seccomp filters with every refusal fatal, makes a call
    # to the real local peer, plays a push-to-talk turn and stops cleanly.
    pytest.importorskip("rtedge.audio.pipeline", reason="rtedge run needs the audio part merged")
    pytest.importorskip("rtedge.peer.cli", reason="rtedge peer not merged yet")
    from tests.support import Daemon, Peer, Proc, tone, voiced_seconds

    peer = Peer(tmp_path).start()
    work = tmp_path / "daemon"
    work.mkdir()
    daemon = Daemon(work, peer.calls_url)
    argv = [sys.executable, "-m", "rtedge", "run", "--config", str(daemon.config_path)]
    sandbox = [sys.executable, str(SANDBOX), "--kill", "--"]
    daemon.proc = Proc("daemon", sandbox + argv, daemon.env, work / "daemon.log")
    daemon.alsa.start()
    try:
        daemon.wait_healthy(30)
        daemon.say(tone(1.0))
        daemon.wait_turn("speaking", 15)
        daemon.wait_turn("idle", 30)
        assert voiced_seconds(daemon.alsa.speaker_pcm()) > 0.3
        code, elapsed = daemon.stop()
        assert code == 0 and elapsed < 5, (code, daemon.log()[-3000:])
    finally:
        daemon.alsa.stop()
        if daemon.proc is not None:
            daemon.proc.kill()
        peer.kill()
