"""Real-process rigs for end-to-end tests: the local peer, the daemon, ALSA file devices, a
systemd notify socket. Nothing here is a fake: each piece is the real program or the real kernel
object, set up in a temporary directory."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import numpy as np
import tomli_w

from rtedge.audio.filedevices import FileDevices, write_framebuffer
from rtedge.audio.filedevices import voiced_seconds as voiced_seconds  # for the tests

# The polling helper lives in tests.poll; re-exported here for the rigs' users.
from tests.poll import TIME_SCALE as TIME_SCALE
from tests.poll import scaled as scaled
from tests.poll import until as until
from tests.poll import wait_for as wait_for
from tests.ports import free_port as free_port

ROOT = Path(__file__).resolve().parents[1]
RATE = 48000


def http(method: str, url: str, body: Any = None, timeout: float = 5) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=scaled(timeout)) as resp:
            raw = resp.read()
            status = resp.status
    except urllib.error.HTTPError as exc:
        raw = exc.read()
        status = exc.code
    except (urllib.error.URLError, OSError):
        return 0, None
    try:
        return status, json.loads(raw) if raw else None
    except ValueError:
        return status, raw.decode(errors="replace")


class Proc:
    def __init__(self, name: str, argv: list[str], env: dict[str, str], log: Path) -> None:
        self.name = name
        self.log_path = log
        self._log = open(log, "ab")  # noqa: SIM115
        self.proc = subprocess.Popen(argv, env=env, stdout=self._log, stderr=subprocess.STDOUT)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def terminate(self, timeout: float = 10) -> tuple[int, float]:
        t0 = time.monotonic()
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait()
        self._log.close()
        return code, time.monotonic() - t0

    def kill(self) -> None:
        if self.alive():
            self.proc.kill()
            self.proc.wait()


def base_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    for key in list(env):
        # In-process tests may have left their own ALSA config (a FIFO mic) in os.environ.
        if key.startswith("RTEDGE_") or key in (
            "NOTIFY_SOCKET",
            "WATCHDOG_USEC",
            "JOURNAL_STREAM",
            "ALSA_CONFIG_PATH",
            "CREDENTIALS_DIRECTORY",
        ):
            del env[key]
    return env


class Peer:
    """``rtedge peer`` as a real process on a free loopback port."""

    def __init__(self, workdir: Path, *args: str, port: int | None = None) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.calls_url = f"{self.url}/v1/realtime/calls"
        self._args = list(args)
        self._workdir = workdir
        self.proc: Proc | None = None

    def start(self) -> Peer:
        argv = [sys.executable, "-m", "rtedge", "peer", "--listen", f"127.0.0.1:{self.port}"]
        self.proc = Proc("peer", argv + self._args, base_env(), self._workdir / "peer.log")
        try:
            wait_for(lambda: http("GET", f"{self.url}/_rtedge/stats")[0] == 200, 20, "peer up")
        except BaseException:
            self.proc.kill()  # a peer that did not come up is not left running
            raise
        return self

    def fault(self, **fault: Any) -> Any:
        status, body = http("POST", f"{self.url}/_rtedge/faults", fault)
        assert status == 200, (status, body)
        return body

    def calls(self) -> list[dict[str, Any]]:
        status, body = http("GET", f"{self.url}/_rtedge/calls")
        assert status == 200, body
        return list(body)

    def active_call(self) -> dict[str, Any] | None:
        active = [c for c in self.calls() if c.get("active")]
        return active[-1] if active else None

    def stats(self) -> dict[str, Any]:
        return dict(http("GET", f"{self.url}/_rtedge/stats")[1])

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.kill()


class Daemon:
    """``rtedge run`` as a real process with file-plugin ALSA, mock GPIO and a file framebuffer."""

    def __init__(
        self,
        workdir: Path,
        calls_url: str,
        *,
        config: dict[str, dict[str, Any]] | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        self.dir = workdir
        self.alsa = FileDevices(workdir)  # rtedge_mic and rtedge_speaker, as the demo's
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        cfg: dict[str, dict[str, Any]] = {
            "realtime": {
                "provider": "local",
                "url": calls_url,
                "api_key": "test-key",
                "connect_timeout_s": scaled(5),
                "liveness_timeout_s": scaled(3),
            },
            "audio": {
                "capture_device": "rtedge_mic",
                "playback_device": "rtedge_speaker",
                "earcons": False,
            },
            "ptt": {"gpio_pin": 17},
            "display": {"backend": "none"},
            "health": {"listen": f"127.0.0.1:{self.port}"},
            "reconnect": {"initial_s": 0.3, "max_s": 2, "jitter": 0.1, "healthy_after_s": 2},
            "logging": {"level": "info"},
        }
        for section, values in (config or {}).items():
            cfg.setdefault(section, {}).update(values)
        if cfg["display"].get("backend") == "fbdev":
            fb = write_framebuffer(workdir, *cfg["display"].pop("size", (640, 480)))
            cfg["display"].setdefault("fbdev", str(fb))
            cfg["display"].setdefault("sysfs", str(workdir / "fb0-sysfs"))
        self.config_path = workdir / "rtedge.toml"
        self.config_path.write_text(tomli_w.dumps(cfg))
        self.env = base_env()
        self.env.update(
            ALSA_CONFIG_PATH=str(self.alsa.conf), GPIOZERO_PIN_FACTORY="mock", RTEDGE_TEST_HOOKS="1"
        )
        self.env.update(env or {})
        self.proc: Proc | None = None

    def start(self, wait_healthy: bool = True) -> Daemon:
        argv = [sys.executable, "-m", "rtedge", "run", "--config", str(self.config_path)]
        self.proc = Proc("daemon", argv, self.env, self.dir / "daemon.log")
        self.alsa.start()
        if wait_healthy:
            self.wait_healthy()
        return self

    def wait_healthy(self, timeout: float = 20) -> dict[str, Any]:
        def ok() -> Any:
            assert self.proc is not None and self.proc.alive(), self.log()
            status, body = http("GET", f"{self.url}/healthz")
            return body if status == 200 else None

        return dict(wait_for(ok, timeout, "daemon healthy"))

    def healthz(self) -> tuple[int, Any]:
        return http("GET", f"{self.url}/healthz")

    def status(self) -> dict[str, Any]:
        code, body = http("GET", f"{self.url}/status")
        assert code == 200, (code, body)
        return dict(body)

    def press(self) -> None:
        assert http("POST", f"{self.url}/ptt/press")[0] == 200

    def release(self) -> None:
        assert http("POST", f"{self.url}/ptt/release")[0] == 200

    def say(self, pcm: np.ndarray, hold_after: float = 0.1) -> None:
        """Hold push-to-talk while ``pcm`` plays into the mic, then release."""
        self.press()
        wait_for(lambda: self.status()["turn"] == "listening", 2, "press confirmed")
        self.alsa.feeder.play(pcm)  # sets ``speaking`` at once; cleared after the last period
        wait_for(lambda: not self.alsa.feeder.speaking.is_set(), 30, "speech fed")
        time.sleep(hold_after)  # held a moment past the speech: the caller's input
        self.release()

    def wait_turn(self, turn: str, timeout: float = 20) -> None:
        wait_for(lambda: self.status()["turn"] == turn, timeout, f"turn {turn}")

    def log(self) -> str:
        return self.proc.log_text() if self.proc else ""

    def stop(self) -> tuple[int, float]:
        self.alsa.stop()
        assert self.proc is not None
        return self.proc.terminate()


class NotifySocket:
    """A real AF_UNIX datagram socket standing where systemd's notify socket would."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(0.2)
        self.messages: list[tuple[float, str]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                data = self.sock.recv(4096)
            except TimeoutError:
                continue
            except OSError:
                return
            for line in data.decode().splitlines():
                self.messages.append((time.monotonic(), line))

    def lines(self, prefix: str) -> list[tuple[float, str]]:
        return [(t, m) for t, m in list(self.messages) if m.startswith(prefix)]

    def close(self) -> None:
        self._stop.set()
        self._thread.join(1)
        self.sock.close()


def tone(seconds: float, freq: float = 440.0, amp: float = 0.3) -> np.ndarray:
    t = np.arange(int(RATE * seconds)) / RATE
    return (amp * 32767 * np.sin(2 * np.pi * freq * t)).astype(np.int16)


#: The service shapes the daemon's turn, barge-in, idle, restart and rotation tests run against:
#: the peer as OpenAI's GA service, and as a minimal independent server (rtedge.peer.minimal).
PROFILES = ("openai", "minimal")


def peer_args(profile: str) -> list[str]:
    return ["--profile", profile] if profile != "openai" else []


def daemon_config(profile: str, config: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    """The daemon's config for a service of ``profile``: a minimal server takes raw SDP with no
    key. ``config`` is merged on top, section by section."""
    out: dict[str, dict[str, Any]] = {}
    if profile == "minimal":
        out["realtime"] = {"signaling": "raw", "api_key": ""}
    for section, values in (config or {}).items():
        out.setdefault(section, {}).update(values)
    return out


def turn_states(log: str) -> list[str]:
    """The turn states the daemon logged, in order (``turn: speaking`` lines)."""
    return [line.split("turn: ", 1)[1].split()[0] for line in log.splitlines() if "turn: " in line]


def recorder(calls: list[str], name: str) -> Callable[[], Coroutine[Any, Any, dict[str, Any]]]:
    """A push-to-talk callback for HealthServer that notes each call and answers as the app does."""

    async def record() -> dict[str, Any]:
        calls.append(name)
        return {"ptt": name}

    return record
