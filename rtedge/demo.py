"""``rtedge demo``: the embedded default, end to end, with nothing attached.

Starts ``rtedge peer`` and ``rtedge run --config config/demo.toml`` as real processes, with ALSA
file-plugin devices (a FIFO as the microphone, fed in real time; a WAV file as the speaker) and a
plain file as the framebuffer; holds push-to-talk over HTTP while a spoken question plays into the
mic; then reports what came back.
"""

from __future__ import annotations

import contextlib
import ctypes
import io
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import tomllib
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Final

import numpy as np

from rtedge.audio.filedevices import RATE, FileDevices, voiced_seconds, write_framebuffer

PEER_PORT = 8788  # config/demo.toml's; another free port when these are taken
HEALTH_PORT = 8787
HEALTH = f"http://127.0.0.1:{HEALTH_PORT}"  # where _get/_post go; set by run_demo
QUESTION = "Hello rtedge. What can you do on this little device?"


def _repo_file(rel: str) -> Path:
    here = Path(__file__).resolve().parents[1] / rel
    return here if here.exists() else Path(rel)


def speech_pcm(text: str) -> np.ndarray:
    """The question as s16 mono 48 kHz: espeak-ng when installed, else a two-tone chirp."""
    if shutil.which("espeak-ng"):
        import av

        wav = subprocess.run(
            ["espeak-ng", "--stdout", text], capture_output=True, check=True
        ).stdout

        chunks = []
        with av.open(io.BytesIO(wav), mode="r") as container:
            resampler = av.AudioResampler(format="s16", layout="mono", rate=RATE)
            for frame in container.decode(audio=0):
                for out in resampler.resample(frame):
                    chunks.append(out.to_ndarray().reshape(-1))
            for out in resampler.resample(None):
                chunks.append(out.to_ndarray().reshape(-1))
        return np.concatenate(chunks).astype(np.int16)
    t = np.arange(int(RATE * 1.5)) / RATE
    return (8000 * np.sin(2 * np.pi * (300 + 200 * t) * t)).astype(np.int16)


def _get(path: str) -> tuple[int, Any]:
    try:
        with urllib.request.urlopen(HEALTH + path, timeout=3) as resp:
            return resp.status, json.load(resp)
    except urllib.error.HTTPError as exc:
        return exc.code, json.load(exc)
    except (urllib.error.URLError, OSError, ValueError):
        return 0, None


def _post(path: str) -> None:
    # No body: urllib would label even an empty one as a form post, which the endpoint refuses.
    req = urllib.request.Request(HEALTH + path, method="POST")
    with urllib.request.urlopen(req, timeout=3):
        pass


class ChildExited(Exception):
    pass


#: Per provider: the daemon's config and the service path on the local peer.
DEMO_PATHS: Final = {
    "local": ("config/demo.toml", "/v1/realtime/calls"),
    "live": ("config/demo-live.toml", "/v1/live/sessions"),
}


def _demo_config() -> dict[str, Any]:
    with _repo_file("config/demo.toml").open("rb") as f:
        return tomllib.load(f)


def _wait_for(
    predicate: Any, timeout: float, what: str, procs: dict[str, Any] | None = None
) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for name, proc in (procs or {}).items():
            if proc.poll() is not None:
                raise ChildExited(f"the {name} exited with {proc.returncode}")
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise TimeoutError(f"timed out waiting for {what}")


def _port(preferred: int) -> int:
    """``preferred`` when it is free on loopback, else one the kernel picks."""
    for port in (preferred, 0):
        with socket.socket() as sock:
            # As the servers bind: a port whose old connections linger in TIME_WAIT is free.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return int(sock.getsockname()[1])
    raise OSError("no free port on 127.0.0.1")


def _listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return False
    return True


class Stopped(Exception):
    """SIGTERM, SIGHUP or SIGINT: stop the children in order and leave."""


def _stop_on_signals() -> None:
    def stop(signum: int, _: Any) -> None:
        raise Stopped(signal.Signals(signum).name)

    for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
        signal.signal(sig, stop)


def _die_with_parent() -> None:
    """In the child, before exec: SIGTERM when the demo dies, even by SIGKILL (Linux)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def run_demo(
    workdir: Path, *, keep: bool = False, time_scale: float = 1.0, provider: str = "local"
) -> int:
    """One scripted turn; ``time_scale`` stretches every wait and the daemon's call timeouts
    (a machine that runs Python several times slower, e.g. arm64 under emulation)."""
    global HEALTH
    _stop_on_signals()
    if isinstance(sys.stdout, io.TextIOWrapper):
        sys.stdout.reconfigure(line_buffering=True)  # each step shows as it happens, piped too
    workdir = workdir.resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    devices = FileDevices(workdir)
    fb = write_framebuffer(workdir)
    peer_port, health_port = _port(PEER_PORT), _port(HEALTH_PORT)
    HEALTH = f"http://127.0.0.1:{health_port}"
    env = dict(
        os.environ,
        ALSA_CONFIG_PATH=str(devices.conf),
        GPIOZERO_PIN_FACTORY="mock",
        RTEDGE_DISPLAY__FBDEV=str(fb),
        RTEDGE_DISPLAY__SYSFS=str(workdir / "fb0-sysfs"),
        RTEDGE_REALTIME__URL=f"http://127.0.0.1:{peer_port}{DEMO_PATHS[provider][1]}",
        RTEDGE_HEALTH__LISTEN=f"127.0.0.1:{health_port}",
    )
    if time_scale != 1:
        realtime = _demo_config()["realtime"]
        for key in ("connect_timeout_s", "liveness_timeout_s"):
            env[f"RTEDGE_REALTIME__{key.upper()}"] = str(realtime[key] * time_scale)
    logs = {name: open(workdir / f"{name}.log", "wb") for name in ("peer", "daemon")}  # noqa: SIM115
    print(f"demo: working in {workdir} (logs: peer.log, daemon.log)")
    for what, usual, port in (("peer", PEER_PORT, peer_port), ("health", HEALTH_PORT, health_port)):
        if port != usual:
            print(f"demo: port {usual} is taken; the {what} port is {port} instead")
    procs: dict[str, subprocess.Popen[bytes]] = {}
    feeder = devices.feeder
    # Each child in a session of its own: a Ctrl-C in the terminal reaches the demo only, which
    # stops the daemon first (its call hung up while the peer still answers), then the peer.
    spawn: dict[str, Any] = {
        "env": env,
        "stderr": subprocess.STDOUT,
        "start_new_session": True,
        "preexec_fn": _die_with_parent,
    }
    try:
        devices.start()  # the mic is live (silence) before the daemon first opens it
        procs["peer"] = subprocess.Popen(
            [sys.executable, "-m", "rtedge", "peer", "--listen", f"127.0.0.1:{peer_port}"],
            stdout=logs["peer"],
            **spawn,
        )
        # The daemon starts once the peer listens, so its first attempt finds it (no warning).
        _wait_for(lambda: _listening(peer_port), 30 * time_scale, "the peer to listen", procs)
        procs["daemon"] = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "rtedge",
                "run",
                "--config",
                str(_repo_file(DEMO_PATHS[provider][0])),
            ],
            stdout=logs["daemon"],
            **spawn,
        )
        t0 = time.monotonic()
        _wait_for(
            lambda: _get("/healthz")[0] == 200,
            30 * time_scale,
            "the daemon's call to come up",
            procs,
        )
        status = _get("/status")[1]
        print(f"demo: call {status['call_id']} up after {time.monotonic() - t0:.1f}s")
        question = speech_pcm(QUESTION)
        print(f"demo: holding push-to-talk, saying {QUESTION!r} ({len(question) / RATE:.1f}s)")
        _post("/ptt/press")
        time.sleep(0.15)  # the press is confirmed after min_press_ms
        feeder.play(question)
        _wait_for(
            lambda: not feeder.speaking.is_set(), 30 * time_scale, "the question to be spoken"
        )
        _post("/ptt/release")
        print("demo: released; waiting for the reply")
        _wait_for(
            lambda: _get("/status")[1]["turn"] == "speaking", 20 * time_scale, "the reply to start"
        )
        _wait_for(
            lambda: _get("/status")[1]["turn"] == "idle", 60 * time_scale, "the reply to finish"
        )
        time.sleep(0.5)
        status = _get("/status")[1]
        heard = devices.speaker_pcm()
        seconds, loud = heard.size / RATE, voiced_seconds(heard)
        reply = status.get("transcript_assistant", "")
        print("demo: reply transcript:", repr(reply))
        if reply.startswith("I heard"):
            print(
                "demo:   (the local peer has no speech recognizer: it answers with how much audio "
                "the push-to-talk turn carried, the question and the moments the button was held "
                "before and after it)"
            )
        print(f"demo: speaker file holds {seconds:.1f}s of audio, {loud:.1f}s of it voiced")
        by_source = status.get("frames_by_source", {})
        print(
            f"demo: avatar frames shown {status['frames_shown']} ({by_source.get('service', 0)} "
            f"from the peer's image events, {by_source.get('avatar', 0)} drawn by the local "
            f"avatar while none came), dropped {status['frames_dropped']}; reconnects "
            f"{status['reconnects']}"
        )
        events = status.get("events_in", {})
        print("demo: events received:", ", ".join(f"{k} x{v}" for k, v in sorted(events.items())))
        ok = loud > 0.5 and bool(reply)
        if keep:
            print(
                f"demo: both running (health endpoint {HEALTH}); try `rtedge status --url "
                f"{HEALTH}/status` or `curl -X POST {HEALTH}/ptt/press`; Ctrl-C to stop"
            )
            while all(p.poll() is None for p in procs.values()):
                time.sleep(0.5)
            for name, proc in procs.items():
                if proc.poll() is not None:
                    print(f"demo: the {name} exited by itself with {proc.returncode}")
                    ok = False
        print("demo: OK" if ok else "demo: the reply did not arrive as expected")
        return 0 if ok else 1
    except Stopped as exc:
        print(f"demo: {exc}: stopping")
        return 0 if keep else 130
    except (TimeoutError, ChildExited) as exc:
        print(f"demo: {exc}; see {workdir}/daemon.log and peer.log", file=sys.stderr)
        for name in ("peer", "daemon"):
            logs[name].flush()
            lines = (workdir / f"{name}.log").read_text(errors="replace").splitlines()
            errors = [ln for ln in lines if " ERROR " in ln or "error" in ln.lower()]
            if errors:
                print(f"demo: {name}: {errors[-1]}", file=sys.stderr)
        return 1
    finally:
        # No second signal may cut the stopping short and leave a child behind.
        for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
            signal.signal(sig, signal.SIG_IGN)
        devices.stop()
        for name in ("daemon", "peer"):  # the daemon hangs up while the peer still answers
            child = procs.get(name)
            if child is None:
                continue
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
            try:
                code = child.wait(timeout=10)
            except subprocess.TimeoutExpired:
                child.kill()
                code = child.wait()
            print(f"demo: {name} exited with {code}")
        for fh in logs.values():
            fh.close()
        for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
            signal.signal(sig, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
