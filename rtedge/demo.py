"""``rtedge demo``: the embedded default, end to end, with nothing attached.

Starts ``rtedge peer`` and ``rtedge run --config config/demo.toml`` as real processes, with ALSA
file-plugin devices (a FIFO as the microphone, fed in real time; a WAV file as the speaker) and a
plain file as the framebuffer; holds push-to-talk over HTTP while a spoken question plays into the
mic; then reports what came back.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import tomllib
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np

RATE = 48000
CHUNK = RATE // 50  # 20 ms
PEER_PORT = 8788
HEALTH = "http://127.0.0.1:8787"
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
        import io

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


def write_asound_conf(path: Path, mic_fifo: Path, speaker: Path) -> None:
    path.write_text(
        f"""pcm.rtedge_mic {{ type file slave.pcm {{ type null }} file "/dev/null"
  infile "{mic_fifo}" format "raw" }}
pcm.rtedge_speaker {{ type file slave.pcm {{ type null }} file "{speaker}" format "wav" }}
pcm.!default {{ type asym capture.pcm "rtedge_mic" playback.pcm "rtedge_speaker" }}
ctl.!default {{ type null }}
"""
    )


def write_framebuffer(workdir: Path, width: int = 640, height: int = 480) -> Path:
    sysfs = workdir / "fb0-sysfs"
    sysfs.mkdir(exist_ok=True)
    (sysfs / "virtual_size").write_text(f"{width},{height}\n")
    (sysfs / "bits_per_pixel").write_text("32\n")
    (sysfs / "stride").write_text(f"{width * 4}\n")
    fb = workdir / "fb0"
    fb.write_bytes(bytes(width * height * 4))
    return fb


class MicFeeder(threading.Thread):
    """Writes 20 ms chunks into the mic FIFO on a real-time clock: silence, or queued speech."""

    def __init__(self, fifo: Path) -> None:
        super().__init__(name="demo-mic", daemon=True)
        self._fifo = fifo
        self._pending: list[np.ndarray] = []
        self._lock = threading.Lock()
        self.stop = threading.Event()
        self.speaking = threading.Event()

    def say(self, pcm: np.ndarray) -> None:
        with self._lock:
            self._pending = [pcm[i : i + CHUNK] for i in range(0, len(pcm), CHUNK)]
            self.speaking.set()

    def run(self) -> None:
        silence = np.zeros(CHUNK, np.int16)
        try:
            with open(self._fifo, "wb", buffering=0) as fh:  # waits for the daemon to open it
                next_t = time.monotonic()
                while not self.stop.is_set():
                    with self._lock:
                        chunk = self._pending.pop(0) if self._pending else None
                        if chunk is None:
                            self.speaking.clear()
                    data = silence if chunk is None else np.pad(chunk, (0, CHUNK - len(chunk)))
                    fh.write(data.tobytes())
                    next_t += 0.02
                    time.sleep(max(0.0, next_t - time.monotonic()))
        except (BrokenPipeError, OSError):
            pass


def _get(path: str) -> tuple[int, Any]:
    try:
        with urllib.request.urlopen(HEALTH + path, timeout=3) as resp:
            return resp.status, json.load(resp)
    except urllib.error.HTTPError as exc:
        return exc.code, json.load(exc)
    except (urllib.error.URLError, OSError, ValueError):
        return 0, None


def _post(path: str) -> None:
    req = urllib.request.Request(HEALTH + path, method="POST", data=b"")
    with urllib.request.urlopen(req, timeout=3):
        pass


class ChildExited(Exception):
    pass


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


def _speaker_stats(path: Path) -> tuple[float, float]:
    if not path.exists():
        return 0.0, 0.0
    data = np.frombuffer(path.read_bytes()[44:], dtype=np.int16)
    if data.size == 0:
        return 0.0, 0.0
    seconds = data.size / (RATE * 2)
    voiced = data.reshape(-1, 2)[:, 0].astype(np.float32) / 32768
    frames = voiced[: len(voiced) // CHUNK * CHUNK].reshape(-1, CHUNK)
    loud = float((np.sqrt((frames**2).mean(axis=1)) > 0.01).sum()) * 0.02
    return seconds, loud


def run_demo(workdir: Path, *, keep: bool = False, time_scale: float = 1.0) -> int:
    """One scripted turn; ``time_scale`` stretches every wait and the daemon's call timeouts
    (a machine that runs Python several times slower, e.g. arm64 under emulation)."""
    workdir = workdir.resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    fifo = workdir / "mic.fifo"
    if fifo.exists():
        fifo.unlink()
    os.mkfifo(fifo)
    speaker = workdir / "speaker.wav"
    speaker.unlink(missing_ok=True)
    asound = workdir / "asound.conf"
    write_asound_conf(asound, fifo, speaker)
    fb = write_framebuffer(workdir)
    env = dict(
        os.environ,
        ALSA_CONFIG_PATH=str(asound),
        GPIOZERO_PIN_FACTORY="mock",
        RTEDGE_DISPLAY__FBDEV=str(fb),
        RTEDGE_DISPLAY__SYSFS=str(workdir / "fb0-sysfs"),
    )
    if time_scale != 1:
        realtime = _demo_config()["realtime"]
        for key in ("connect_timeout_s", "liveness_timeout_s"):
            env[f"RTEDGE_REALTIME__{key.upper()}"] = str(realtime[key] * time_scale)
    logs = {name: open(workdir / f"{name}.log", "wb") for name in ("peer", "daemon")}  # noqa: SIM115
    print(f"demo: working in {workdir} (logs: peer.log, daemon.log)")
    procs: dict[str, subprocess.Popen[bytes]] = {}
    feeder = MicFeeder(fifo)
    try:
        procs["peer"] = subprocess.Popen(
            [sys.executable, "-m", "rtedge", "peer", "--listen", f"127.0.0.1:{PEER_PORT}"],
            env=env,
            stdout=logs["peer"],
            stderr=subprocess.STDOUT,
        )
        procs["daemon"] = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "rtedge",
                "run",
                "--config",
                str(_repo_file("config/demo.toml")),
            ],
            env=env,
            stdout=logs["daemon"],
            stderr=subprocess.STDOUT,
        )
        feeder.start()
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
        feeder.say(question)
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
        seconds, loud = _speaker_stats(speaker)
        print("demo: reply transcript:", repr(status.get("transcript_assistant", "")))
        print(f"demo: speaker file holds {seconds:.1f}s of audio, {loud:.1f}s of it voiced")
        print(
            f"demo: avatar frames shown {status['frames_shown']}, dropped "
            f"{status['frames_dropped']}; reconnects {status['reconnects']}"
        )
        events = status.get("events_in", {})
        print("demo: events received:", ", ".join(f"{k} x{v}" for k, v in sorted(events.items())))
        if keep:
            print("demo: both running; Ctrl-C to stop")
            with _suppress_interrupt():
                while all(p.poll() is None for p in procs.values()):
                    time.sleep(0.5)
        ok = loud > 0.5 and bool(status.get("transcript_assistant"))
        print("demo: OK" if ok else "demo: the reply did not arrive as expected")
        return 0 if ok else 1
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
        feeder.stop.set()
        for name, proc in procs.items():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
            try:
                code = proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                code = proc.wait()
            print(f"demo: {name} exited with {code}")
        for fh in logs.values():
            fh.close()


class _suppress_interrupt:
    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: Any, *_: Any) -> bool:
        return exc_type is KeyboardInterrupt
