#!/usr/bin/env python3
"""Audio benchmark: mic-to-speaker loop latency and CPU per second of two-way audio.

Every client talks to one ``rtedge peer --mode loopback`` (received audio is sent straight back)
on loopback, in the same run, one after the other (``--repeat`` alternates them again):

* ``bare``: a bare aiortc client (one RTCPeerConnection, a wall-clock paced sending track, the
  remote track recorded as frames arrive; no ALSA, no playout buffer). This is the baseline the
  budget names ("a bare aiortc loopback"); it uses aiortc's defaults throughout.
* ``bare_alsa``: the same bare client on the same test devices as rtedge: a blocking
  pyalsaaudio capture thread feeding the sending track, and the received frames written to a
  blocking pyalsaaudio playback device of two periods. What the devices alone cost.
* ``rtedge``: the appliance with push-to-talk held through the HTTP path.
* ``rtedge_live``: the same appliance with ``provider = "live"``, through the peer's GPT-Live
  route (``POST /v1/live/sessions``). Its mic is opened directly (``talking``), not by a held
  press: on Live a held button also holds the service's audio (barge-in policy), and what is
  measured here is the media path.

The test devices (ALSA ``file`` plugin over ``null``) are driven by two helper processes, so
neither their CPU nor their GIL is charged to the client under test:

* mic: a process writes one 20 ms period into the capture FIFO every 20 ms and logs when each
  period went in (the actual time, not the schedule);
* speaker: a "DAC" process drains the playback FIFO 5 ms at a time, every 5 ms, as a sound
  card's DMA would, padding underruns with silence, and logs when each step was taken (and how
  much it found: ``dac_underruns`` counts the steps that found the FIFO short).

Both run SCHED_FIFO where allowed (else nice -10): hardware keeps time on a loaded machine; the
clients under test all run as ordinary processes.

The ALSA ``file`` plugin writes to its file only what exceeds one device buffer, so the test
speaker always holds a full device buffer (two periods) plus what sits in its FIFO: a sound card
kept full. That is the same for every client that uses it.

Latency of one pulse = (when the DAC took the period holding it + offset in that period) -
(when the mic period holding it was written + offset). Input and output use the same
convention as the bare client, whose frames count from when ``recv()`` made them to when they
arrived. The pulse (a 150 ms chirp with 2 ms edges, so its onset is sharp at every stage) is found
in the output by normalised cross-correlation.

Why earlier numbers were quantised (every rtedge sample 305.177 ms): every pulse started on a
period boundary and the DAC's times were its schedule (``t0 + k * 20 ms``), not its reads, so the
figure was a whole number of periods plus the arbitrary phase between the mic's and the DAC's
schedules. Times are now measured on both ends.

``--trace`` (a separate run: the hooks cost CPU) timestamps every stage of the pulse's onset
(capture read -> loop -> MicTrack -> Opus encoder/RTP out -> [peer] -> RTP in -> jitter buffer
-> decoder -> remote track -> SpeakerSink -> playback buffer -> device write -> DAC) and prints
the median time of each stage after the mic.

CPU: user+sys of the client's own process over the steady window, divided by the window.

    python scripts/bench_audio.py [--seconds 10] [--repeat 3] [--trace] [--out FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.util
import json
import os
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import thread_wakeups

ROOT = Path(__file__).resolve().parents[1]
#: Where the rtedge under test is imported from (``--before`` points the role ``rtedge_before``
#: at another checkout, so an old and a new rtedge are measured in the same run).
RTEDGE_ROOT = Path(os.environ.get("RTEDGE_BENCH_ROOT") or ROOT)
sys.path.insert(0, str(RTEDGE_ROOT))

RATE = 48000
PERIOD = 960
PULSE_S = 0.15
PULSE_EVERY_S = 0.5
EDGE_S = 0.002
DAC_STEP = 240  # frames the DAC takes at a time (5 ms)
SEARCH_S = 0.95  # a pulse is looked for this long after it went in (the same kind is 1 s apart)
ROLES = ("bare", "bare_alsa", "rtedge", "rtedge_live", "rtedge_before")

Int16 = npt.NDArray[np.int16]


def pulse(i: int = 0) -> Int16:
    """Pulse ``i``: a chirp up for even ``i``, down for odd (their cross-correlation is under
    0.05, so an echo of the neighbouring pulse is never taken for this one)."""
    t = np.arange(int(PULSE_S * RATE)) / RATE
    f0, f1 = (300.0, 3000.0) if i % 2 == 0 else (3000.0, 300.0)
    phase = 2 * np.pi * (f0 * t + (f1 - f0) * t * t / (2 * PULSE_S))
    edge = int(EDGE_S * RATE)
    env = np.ones(t.size)
    ramp = 0.5 - 0.5 * np.cos(np.linspace(0.0, np.pi, edge))
    env[:edge] = ramp
    env[-edge:] = ramp[::-1]
    return (np.sin(phase) * env * 0.4 * 32767).astype(np.int16)


def pulse_train(seconds: float) -> tuple[Int16, list[int]]:
    n = int(seconds / PULSE_EVERY_S)
    out = np.zeros(int(seconds * RATE), np.int16)
    starts = []
    for i in range(n):
        p = pulse(i)
        # a different offset inside the period for each pulse (not only period boundaries)
        s = int((i * PULSE_EVERY_S + 0.1) * RATE) + (i * 397) % PERIOD
        if s + p.size > out.size:
            break
        out[s : s + p.size] = p
        starts.append(s)
    return out, starts


def locate(received: Int16, start_hint: int, p: Int16, window: int) -> int | None:
    """Index of pulse ``p`` in ``received`` at or after ``start_hint`` (within ``window``)."""
    start_hint = max(0, start_hint)
    seg = received[start_hint : start_hint + window + p.size].astype(np.float64)
    if seg.size < p.size:
        return None
    corr = np.correlate(seg, p.astype(np.float64), mode="valid")
    i = int(np.argmax(corr))
    norm = np.linalg.norm(seg[i : i + p.size]) * np.linalg.norm(p) + 1e-9
    if corr[i] / norm < 0.5:
        return None
    return start_hint + i


async def until(cond: Callable[[], object], within: float) -> None:
    deadline = time.monotonic() + within
    while not cond():
        if time.monotonic() > deadline:
            raise SystemExit("timed out")
        await asyncio.sleep(0.05)  # noqa: ASYNC110 (polling a plain attribute)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cpu_seconds() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


class GcTimer:
    """Time spent in the garbage collector (thread CPU time), by generation."""

    def __init__(self) -> None:
        import gc

        self.seconds = [0.0, 0.0, 0.0]
        self.count = [0, 0, 0]
        self._t = 0.0
        gc.callbacks.append(self._cb)

    def _cb(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._t = time.thread_time()
        else:
            g = info["generation"]
            self.seconds[g] += time.thread_time() - self._t
            self.count[g] += 1

    def snapshot(self) -> tuple[list[float], list[int]]:
        return list(self.seconds), list(self.count)


GC = GcTimer()


def gc_per_s(
    before: tuple[list[float], list[int]], after: tuple[list[float], list[int]], secs: float
) -> dict[str, Any]:
    s0, c0 = before
    s1, c1 = after
    return {
        "s_per_s": round((sum(s1) - sum(s0)) / secs, 5),
        "collections": [b - a for a, b in zip(c0, c1, strict=True)],
    }


def thread_cpu() -> dict[str, float]:
    """CPU seconds so far of each thread of this process, by Python thread name (threads of
    the same name, such as executor workers, summed)."""
    names = {t.native_id: t.name for t in threading.enumerate()}
    tick = os.sysconf("SC_CLK_TCK")
    out: dict[str, float] = {}
    for task in Path("/proc/self/task").iterdir():
        try:
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        name = names.get(int(task.name), "other")
        name = name.split("_")[0] if name.startswith("ThreadPoolExecutor") else name
        out[name] = out.get(name, 0.0) + (int(fields[11]) + int(fields[12])) / tick
    return out


def wakeups() -> tuple[float, thread_wakeups.Snapshot]:
    """Now and every thread's context switches so far, by Python thread name."""
    names = {t.native_id: t.name for t in threading.enumerate() if t.native_id is not None}
    return time.monotonic(), thread_wakeups.snapshot("self", names)


def wakeups_per_s(
    before: tuple[float, thread_wakeups.Snapshot], after: tuple[float, thread_wakeups.Snapshot]
) -> dict[str, float]:
    """Wakeups (voluntary context switches) per second of each thread between two ``wakeups``:
    unlike CPU seconds, hardly changed by the machine's load."""
    return thread_wakeups.per_s(before[1], after[1], after[0] - before[0])


def thread_cpu_per_s(
    before: dict[str, float], after: dict[str, float], secs: float
) -> dict[str, float]:
    return {
        k: round((after.get(k, 0.0) - before.get(k, 0.0)) / secs, 4)
        for k in sorted(after)
        if after.get(k, 0.0) - before.get(k, 0.0) > 0
    }


# ---- stage tracing (--trace) ------------------------------------------------------------------


class Trace:
    """Times at which the onset of a pulse passed each stage. PCM stages are detected by content
    (the first loud block after a quiet stretch); the encoded stages by RTP timestamp."""

    LOUD = 300  # |sample| of the pulse's first period is far above this (edge is 2 ms)
    QUIET_BLOCKS = 3

    def __init__(self) -> None:
        self.onsets: dict[str, list[float]] = {}
        self._quiet: dict[str, int] = {}
        self.order: list[str] = []
        # encoded stages
        self.sent: list[float] = []  # completion time of each encoded outgoing frame, in order
        self.sent_onset_index: list[int] = []  # which outgoing frames carried an onset
        self.arrival: dict[int, float] = {}  # RTP timestamp -> arrival of its packet
        self.jitter_out: dict[int, float] = {}  # RTP timestamp -> released by the jitter buffer
        self.ts_origin: int | None = None  # first released timestamp (aiortc's TimestampMapper)
        self.remote_onset_pts: list[tuple[float, int]] = []
        self.frames_out = 0
        self.onset_packets: set[bytes] = set()  # encoded mic packets holding an onset

    def mark(self, stage: str, t: float | None = None) -> None:
        """An onset seen at ``stage`` by other means than its samples."""
        if stage not in self.onsets:
            self.onsets[stage] = []
            self.order.append(stage)
        self.onsets[stage].append(time.monotonic() if t is None else t)

    def pcm(self, stage: str, samples: Any, t: float | None = None, channels: int = 1) -> bool:
        """Feed one block of s16 samples seen at ``stage``; True when it holds an onset."""
        t = time.monotonic() if t is None else t
        arr = np.frombuffer(samples, np.int16) if isinstance(samples, bytes) else samples
        if channels > 1:
            arr = arr.reshape(-1)[::channels]
        loud = bool(arr.size) and int(np.abs(arr.astype(np.int32)).max()) > self.LOUD
        quiet = self._quiet.get(stage, 0)
        onset = loud and quiet >= self.QUIET_BLOCKS
        self._quiet[stage] = 0 if loud else quiet + 1
        if onset:
            self.mark(stage, t)
        return onset

    def dump(self) -> dict[str, Any]:
        stages = {k: self.onsets[k] for k in self.order}
        if self.sent_onset_index:
            stages["rtp.sent"] = [self.sent[i] for i in self.sent_onset_index if i < len(self.sent)]
        if self.remote_onset_pts and self.ts_origin is not None:
            arr, jb = [], []
            for _, pts in self.remote_onset_pts:
                ts = (self.ts_origin + pts) & 0xFFFFFFFF
                if ts in self.arrival:
                    arr.append(self.arrival[ts])
                if ts in self.jitter_out:
                    jb.append(self.jitter_out[ts])
            stages["rtp.arrived"] = arr
            stages["jitter.released"] = jb
        return stages


def install_aiortc_hooks(trace: Trace) -> None:
    """Wrap aiortc's sender and receiver (this process only) to time the encoded stages."""
    from aiortc import jitterbuffer, rtcrtpreceiver, rtcrtpsender

    orig_next = rtcrtpsender.RTCRtpSender._next_encoded_frame

    async def next_encoded_frame(self: Any, codec: Any) -> Any:
        frame = await orig_next(self, codec)
        if frame is not None and getattr(self, "kind", "audio") == "audio":
            trace.sent.append(time.monotonic())
        return frame

    setattr(rtcrtpsender.RTCRtpSender, "_next_encoded_frame", next_encoded_frame)  # noqa: B010

    orig_handle = rtcrtpreceiver.RTCRtpReceiver._handle_rtp_packet

    async def handle_rtp_packet(self: Any, packet: Any, arrival_time_ms: int) -> None:
        trace.arrival.setdefault(packet.timestamp, time.monotonic())
        await orig_handle(self, packet, arrival_time_ms)

    setattr(rtcrtpreceiver.RTCRtpReceiver, "_handle_rtp_packet", handle_rtp_packet)  # noqa: B010

    hook_jitter_buffer(jitterbuffer.JitterBuffer, trace)
    try:
        from rtedge.rtc import jitter
    except ImportError:  # an rtedge from before it had its own
        return
    hook_jitter_buffer(jitter.AudioJitterBuffer, trace)


def hook_jitter_buffer(cls: Any, trace: Trace) -> None:
    orig_add = cls.add

    def add(self: Any, packet: Any) -> Any:
        pli, frame = orig_add(self, packet)
        if frame is not None and not self._is_video and type(self) is cls:
            if trace.ts_origin is None:
                trace.ts_origin = frame.timestamp
            t = time.monotonic()
            # a release of several packets (rtedge's buffer: one Opus packet of several frames,
            # code 3) carries all their timestamps
            data = frame.data
            count = data[1] & 0x3F if len(data) > 1 and data[0] & 3 == 3 else 1
            for k in range(count):
                trace.jitter_out.setdefault((frame.timestamp + k * PERIOD) & 0xFFFFFFFF, t)
        return pli, frame

    setattr(cls, "add", add)  # noqa: B010


def traced_frame_out(trace: Trace, frame: Any) -> None:
    """An outgoing frame (mono s16) handed to aiortc's sender."""
    if trace.pcm("track.recv", bytes(frame.planes[0])[: frame.samples * 2]):
        trace.sent_onset_index.append(trace.frames_out)
    trace.frames_out += 1


def traced_frame_in(trace: Trace, stage: str, frame: Any) -> None:
    """A decoded incoming frame (aiortc gives s16 stereo interleaved)."""
    arr = frame.to_ndarray().reshape(-1)
    if trace.pcm(stage, arr, channels=2):
        trace.remote_onset_pts.append((time.monotonic(), int(frame.pts)))


def install_rtedge_hooks(trace: Trace) -> None:
    """Wrap the mic's encoder, the loop's hand-over and the tracks (this process only)."""
    from rtedge.audio import opus, pipeline, tracks
    from rtedge.realtime import call

    # the mic is Opus-encoded on the capture thread: the packet that carries the onset is
    # followed by its bytes
    orig_encode = opus.MicEncoder.encode

    def encode(self: Any, samples: Any) -> bytes:
        packet = orig_encode(self, samples)
        if trace.pcm("capture.encoded", samples):
            trace.onset_packets.add(packet)
        return packet

    opus.MicEncoder.encode = encode  # type: ignore[method-assign]

    orig_on_mic = pipeline.AudioPipeline._on_mic

    def on_mic(self: Any, packet: bytes, level: float, live: bool) -> None:
        if packet in trace.onset_packets:
            trace.mark("loop.mic")
        orig_on_mic(self, packet, level, live)

    pipeline.AudioPipeline._on_mic = on_mic  # type: ignore[method-assign]

    orig_recv = tracks.MicTrack.recv

    async def mic_recv(self: Any) -> Any:
        packet = await orig_recv(self)
        if bytes(packet) in trace.onset_packets:
            trace.mark("track.recv")
            trace.sent_onset_index.append(trace.frames_out)
        trace.frames_out += 1
        return packet

    tracks.MicTrack.recv = mic_recv  # type: ignore[method-assign]

    orig_watched = call._WatchedTrack.recv

    async def watched_recv(self: Any) -> Any:
        frame = await orig_watched(self)
        traced_frame_in(trace, "remote.recv", frame)
        return frame

    call._WatchedTrack.recv = watched_recv  # type: ignore[method-assign]


def attach_device_trace(audio: Any, trace: Trace) -> None:
    """The device threads' own trace hook (``DeviceWorker.trace``): capture read and hand-over,
    the sink's push, the playout buffer's take and the device write, each timed where it
    happens. An rtedge from before the hook has no such attribute to call: those stages are
    then missing from its table."""

    def hook(stage: str, samples: Any, channels: int, t: float) -> None:
        trace.pcm(stage, samples, t, channels=channels)

    audio.capture.trace = hook
    audio.playback.trace = hook


# ---- the test devices: a mic writer and a DAC, each its own process ----------------------------


HARDWARE_CLOCK = r"""
import os
try:  # hardware keeps time whatever the load: real-time priority where allowed
    os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(20))
except (OSError, AttributeError):
    try:
        os.nice(-10)
    except OSError:
        pass
"""

MIC_CODE = (
    HARDWARE_CLOCK
    + r"""
import json, os, signal, sys, time
fifo, sigfile, go, log, ready, channels = sys.argv[1:7]
channels = int(channels)
fd = os.open(fifo, os.O_RDWR)
chunk = 960 * 2 * channels
sig = open(sigfile, "rb").read()
silence = bytes(chunk)
stop = []
signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
t0 = time.monotonic()
with open(ready, "w") as fh:
    fh.write(repr(t0))
k = 0
pos = None
times = []
late = 0.0
while not stop:
    if pos is None and os.path.exists(go):
        pos = 0
    if pos is not None and pos < len(sig):
        data = sig[pos : pos + chunk]
        os.write(fd, data + bytes(chunk - len(data)))
        times.append(time.monotonic())
        pos += chunk
    else:
        os.write(fd, silence)
    k += 1
    now = time.monotonic()
    due = t0 + k * 0.02
    late = max(late, now - due)
    if now - due > 0.1:
        t0 = now - k * 0.02
    time.sleep(max(0.0, due - now))
with open(log, "w") as fh:
    json.dump({"times": times, "max_late_s": late}, fh)
"""
)


DAC_CODE = (
    HARDWARE_CLOCK
    + r"""
import fcntl, json, os, signal, sys, time
fifo, out, ready, log, step = sys.argv[1:6]
step = int(step)
fd = os.open(fifo, os.O_RDWR | os.O_NONBLOCK)
fcntl.fcntl(fd, 1031, 4096)  # F_SETPIPE_SZ: a pipe about one period deep
stop = []
signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
want = step * 4
t0 = time.monotonic()
with open(ready, "w") as fh:
    fh.write(repr(t0))
k = 0
times = []
got = []
with open(out, "wb") as sink:
    while not stop:
        try:
            data = os.read(fd, want)
        except BlockingIOError:
            data = b""
        times.append(time.monotonic())
        got.append(len(data))
        sink.write(data + bytes(want - len(data)))
        k += 1
        time.sleep(max(0.0, t0 + k * step / 48000 - time.monotonic()))
with open(log, "w") as fh:
    json.dump({"t0": t0, "times": times, "got": got}, fh)
"""
)


def _spawn_helper(code: str, args: list[str], ready: Path) -> tuple[subprocess.Popen[bytes], float]:
    proc = subprocess.Popen([sys.executable, "-c", code, *args])
    deadline = time.monotonic() + 10
    while not ready.exists() or not ready.read_text():
        if time.monotonic() > deadline or proc.poll() is not None:
            raise SystemExit("test device helper did not start")
        time.sleep(0.01)
    return proc, float(ready.read_text())


class Dac:
    """Consumes the speaker FIFO like a sound card: ``DAC_STEP`` frames every 5 ms (a card's DMA
    takes samples continuously; a coarser step would make a device with short periods look as
    if it underran), underruns padded with silence.
    A separate process: pyalsaaudio holds the GIL in ``drop()``/``avail()``, and the file
    plugin may write to the FIFO there, so a reader thread in our process could deadlock."""

    def __init__(self, fifo: Path) -> None:
        self.out = fifo.with_suffix(".out")
        self.log = fifo.with_suffix(".log")
        self.proc, self.t0 = _spawn_helper(
            DAC_CODE,
            [
                str(fifo),
                str(self.out),
                str(fifo.with_suffix(".ready")),
                str(self.log),
                str(DAC_STEP),
            ],
            fifo.with_suffix(".ready"),
        )
        self.times: list[float] = []
        self.got: list[int] = []

    def frames(self) -> int:
        return self.out.stat().st_size // 4 if self.out.exists() else 0

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(5)
        log = json.loads(self.log.read_text())
        self.times, self.got = log["times"], log["got"]

    def underruns(self, t_from: float, t_to: float) -> int:
        """Steps in which the DAC found the FIFO (partly) empty between two times: gaps."""
        return sum(
            1
            for t, g in zip(self.times, self.got, strict=True)
            if t_from <= t < t_to and g < DAC_STEP * 4
        )

    def left(self) -> Int16:
        data = self.out.read_bytes()
        return np.frombuffer(data[: len(data) // 4 * 4], np.int16).reshape(-1, 2)[:, 0]

    def when(self, sample: int) -> float:
        """When the DAC took output ``sample`` (its step's read time + offset)."""
        k, r = divmod(sample, DAC_STEP)
        return self.times[k] + r / RATE

    def lateness_ms(self) -> float:
        """How late the DAC's reads were against its schedule, worst case."""
        t0 = self.times[0]
        return max((t - t0 - k * DAC_STEP / RATE) * 1000 for k, t in enumerate(self.times))


class Mic:
    """Writes the capture FIFO in real time from a separate process; ``go()`` starts the signal
    at the next period and ``written_at(s)`` says when signal sample ``s`` went in."""

    def __init__(self, fifo: Path, signal: Int16, channels: int) -> None:
        work = fifo.parent
        self._go = work / "mic.go"
        self._log = work / "mic.log"
        sigfile = work / "mic.signal"
        sigfile.write_bytes(np.repeat(signal, channels).astype(np.int16).tobytes())
        self.proc, _ = _spawn_helper(
            MIC_CODE,
            [
                str(fifo),
                str(sigfile),
                str(self._go),
                str(self._log),
                str(work / "mic.ready"),
                str(channels),
            ],
            work / "mic.ready",
        )
        self.times: list[float] = []
        self.max_late_s = 0.0

    def go(self) -> None:
        self._go.write_text("go")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(5)
        log = json.loads(self._log.read_text())
        self.times, self.max_late_s = log["times"], log["max_late_s"]

    def written_at(self, sample: int) -> float | None:
        k, r = divmod(sample, PERIOD)
        return self.times[k] + r / RATE if k < len(self.times) else None


def filedevices() -> Any:
    """``rtedge/audio/filedevices.py`` of this checkout, loaded by path: the test devices are the
    same for every role, whichever rtedge is measured (``--before`` may name one without it)."""
    spec = importlib.util.spec_from_file_location(
        "bench_filedevices", ROOT / "rtedge" / "audio" / "filedevices.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def alsa_devices(capture_channels: int) -> tuple[Path, Path, Path]:
    work = Path(tempfile.mkdtemp(prefix="rtedge-bench-"))
    mic_fifo, spk_fifo = work / "mic.fifo", work / "spk.fifo"
    os.mkfifo(mic_fifo)
    os.mkfifo(spk_fifo)
    fd = filedevices()
    conf = fd.write_asound_conf(
        work / "asound.conf", fd.capture_pcm("rtmic", mic_fifo), fd.playback_pcm("rtspk", spk_fifo)
    )
    os.environ["ALSA_CONFIG_PATH"] = str(conf)
    return work, mic_fifo, spk_fifo


def device_latencies(
    mic: Mic, dac: Dac, starts: list[int], out_before: int
) -> tuple[list[float], list[float]]:
    """Per pulse: the loop latency (ms) and when the pulse went in (for the stage trace)."""
    out = dac.left()
    lat: list[float] = []
    t_ins: list[float] = []
    for i, s in enumerate(starts):
        t_in = mic.written_at(s)
        if t_in is None:
            continue
        t_ins.append(t_in - (s % PERIOD) / RATE)
        # first output sample the DAC took at or after t_in
        k = next((n for n, t in enumerate(dac.times) if t >= t_in), len(dac.times))
        j = locate(out, max(out_before, k * DAC_STEP), pulse(i), int(SEARCH_S * RATE))
        if j is not None:
            lat.append((dac.when(j) - t_in) * 1000)
    return lat, t_ins


# ---- rtedge -----------------------------------------------------------------------------------


async def run_rtedge(
    calls_url: str, seconds: float, trace: Trace | None, overrides: dict[str, Any]
) -> dict[str, Any]:
    from rtedge.app import Appliance
    from rtedge.settings import Settings
    from rtedge.state import Connection

    if trace is not None:
        install_aiortc_hooks(trace)
        install_rtedge_hooks(trace)
    raw: dict[str, Any] = {
        "realtime": {"provider": "local", "url": calls_url, "api_key": "bench"},
        "audio": {"capture_device": "rtmic", "playback_device": "rtspk", "earcons": False},
        "ptt": {"gpio_pin": None},
        "display": {"backend": "none"},
        "health": {"listen": f"127.0.0.1:{free_port()}"},
        "logging": {"level": "warning"},
    }
    for key, value in overrides.items():
        section, name = key.split(".", 1)
        raw.setdefault(section, {})[name] = value
    settings = Settings.model_validate(raw)
    _, mic_fifo, spk_fifo = alsa_devices(settings.audio.channels)
    signal, starts = pulse_train(seconds)
    mic, dac = Mic(mic_fifo, signal, settings.audio.channels), Dac(spk_fifo)
    app = Appliance(settings)
    if trace is not None:
        attach_device_trace(app.audio, trace)
    stop = asyncio.Event()
    task = asyncio.create_task(app.run(stop))
    try:
        await until(lambda: app.state.connection is Connection.CONNECTED or task.done(), 20)
        if task.done():
            task.result()  # raises what stopped the appliance
        if settings.realtime.provider == "live":
            app.audio.talking = True  # the media path only (a held press holds Live's output)
        else:
            app.ptt.press()  # held for the whole run: the mic goes out
        await asyncio.sleep(1.5)
        out_before = dac.frames()
        xruns0 = app.audio.playback.xruns
        silence0 = app.audio.playback.silence_periods
        c0, t0, th0, gc0, w0 = (
            cpu_seconds(),
            time.monotonic(),
            thread_cpu(),
            GC.snapshot(),
            wakeups(),
        )
        mic.go()
        await asyncio.sleep(seconds + 1.0)
        c1, t1, th1, gc1, w1 = (
            cpu_seconds(),
            time.monotonic(),
            thread_cpu(),
            GC.snapshot(),
            wakeups(),
        )
        xruns = app.audio.playback.xruns - xruns0
        silence = app.audio.playback.silence_periods - silence0
        if settings.realtime.provider != "live":
            app.ptt.release()
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)
        mic.stop()
        dac.stop()
    lat, t_ins = device_latencies(mic, dac, starts, out_before)
    result = {
        "latencies_ms": lat,
        "cpu_s_per_s": (c1 - c0) / (t1 - t0),
        "thread_cpu_s_per_s": thread_cpu_per_s(th0, th1, t1 - t0),
        "gc": gc_per_s(gc0, gc1, t1 - t0),
        "wakeups_per_s": wakeups_per_s(w0, w1),
        "pulses": len(starts),
        "drops": dict(app.state.queue_drops),
        "playback_xruns": xruns,
        "dac_late_ms": round(dac.lateness_ms(), 1),
        "dac_underruns": dac.underruns(t0, t1),
        "mic_late_ms": round(mic.max_late_s * 1000, 1),
        "silence_periods": silence,
    }
    if trace is not None:
        result["trace"] = {"t_in": t_ins, "stages": trace.dump(), "dac": dac_onsets(dac)}
    return result


def dac_onsets(dac: Dac) -> list[float]:
    """Onsets in what the DAC took, timed by its reads."""
    out = dac.left()
    onsets = []
    t = Trace()
    for k in range(min(len(dac.times), out.size // DAC_STEP)):
        if t.pcm("dac", out[k * DAC_STEP : (k + 1) * DAC_STEP]):
            onsets.append(dac.times[k])
    return onsets


# ---- bare aiortc ------------------------------------------------------------------------------


async def connect_bare(calls_url: str, sender: Any, on_track: Callable[[Any], None]) -> Any:
    from aiortc import RTCConfiguration, RTCPeerConnection
    from bare_call import offer_and_answer

    from rtedge.rtc.ice import use_host_addresses

    use_host_addresses(["127.0.0.1"])
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    pc.addTrack(sender)
    pc.createDataChannel("oai-events")
    pc.on("track", on_track)
    await offer_and_answer(pc, calls_url)
    return pc


def make_frame(pcm: bytes, pts: int) -> Any:
    import fractions

    import av

    frame = av.AudioFrame(format="s16", layout="mono", samples=PERIOD)
    frame.planes[0].update(pcm)
    frame.sample_rate = RATE
    frame.pts = pts
    frame.time_base = fractions.Fraction(1, RATE)
    return frame


async def run_bare(calls_url: str, seconds: float, trace: Trace | None) -> dict[str, Any]:
    """A bare aiortc loopback: no devices, no buffers. The baseline the budget names."""
    from aiortc.mediastreams import MediaStreamTrack

    if trace is not None:
        install_aiortc_hooks(trace)

    class Sender(MediaStreamTrack):
        kind = "audio"

        def __init__(self) -> None:
            super().__init__()
            self.signal: Int16 | None = None
            self.made: list[float] = []  # when each signal period was made
            self.pos = 0
            self.n = 0
            self.t0: float | None = None

        async def recv(self) -> Any:
            if self.t0 is None:
                self.t0 = time.monotonic()
            wait = self.t0 + self.n * PERIOD / RATE - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            chunk = np.zeros(PERIOD, np.int16)
            if self.signal is not None and self.pos < self.signal.size:
                self.made.append(time.monotonic())
                part = self.signal[self.pos : self.pos + PERIOD]
                chunk[: part.size] = part
                self.pos += PERIOD
            frame = make_frame(chunk.tobytes(), self.n * PERIOD)
            self.n += 1
            if trace is not None:
                traced_frame_out(trace, frame)
            return frame

    received: list[Int16] = []
    arrivals: list[float] = []

    async def drain(track: MediaStreamTrack) -> None:
        while True:
            try:
                frame: Any = await track.recv()
            except Exception:
                return
            arrivals.append(time.monotonic())
            if trace is not None:
                traced_frame_in(trace, "remote.recv", frame)
            received.append(frame.to_ndarray().reshape(-1, 2)[:, 0].copy())

    sender = Sender()
    tasks: list[asyncio.Task[None]] = []
    pc = await connect_bare(
        calls_url, sender, lambda track: tasks.append(asyncio.ensure_future(drain(track)))
    )
    await until(lambda: bool(received), 20)
    await asyncio.sleep(1.5)
    signal, starts = pulse_train(seconds)
    frames_before = len(received)
    c0, t0, th0, gc0, w0 = cpu_seconds(), time.monotonic(), thread_cpu(), GC.snapshot(), wakeups()
    sender.signal = signal
    await asyncio.sleep(seconds + 1.0)
    c1, t1, th1, gc1, w1 = cpu_seconds(), time.monotonic(), thread_cpu(), GC.snapshot(), wakeups()
    await pc.close()
    for t in tasks:
        t.cancel()
    out = np.concatenate(received)
    latencies = []
    t_ins = []
    for i, s in enumerate(starts):
        k, r = divmod(s, PERIOD)
        if k >= len(sender.made):
            continue
        t_in = sender.made[k] + r / RATE
        t_ins.append(sender.made[k])
        first = next((i for i, a in enumerate(arrivals) if a >= t_in), len(arrivals))
        hint = max(frames_before, first) * PERIOD
        j = locate(out, hint, pulse(i), int(SEARCH_S * RATE))
        if j is not None:
            f, r = divmod(j, PERIOD)
            latencies.append((arrivals[f] + r / RATE - t_in) * 1000)
    result: dict[str, Any] = {
        "latencies_ms": latencies,
        "cpu_s_per_s": (c1 - c0) / (t1 - t0),
        "thread_cpu_s_per_s": thread_cpu_per_s(th0, th1, t1 - t0),
        "gc": gc_per_s(gc0, gc1, t1 - t0),
        "wakeups_per_s": wakeups_per_s(w0, w1),
        "pulses": len(starts),
    }
    if trace is not None:
        result["trace"] = {"t_in": t_ins, "stages": trace.dump()}
    return result


async def run_bare_alsa(calls_url: str, seconds: float, trace: Trace | None) -> dict[str, Any]:
    """The bare client on the same test devices as rtedge: a blocking capture thread into the
    sending track, received frames into a blocking two-period playback device."""
    import queue

    import alsaaudio
    from aiortc.mediastreams import MediaStreamTrack

    if trace is not None:
        install_aiortc_hooks(trace)
    _, mic_fifo, spk_fifo = alsa_devices(1)
    signal, starts = pulse_train(seconds)
    mic, dac = Mic(mic_fifo, signal, 1), Dac(spk_fifo)
    loop = asyncio.get_running_loop()
    mic_q: asyncio.Queue[bytes] = asyncio.Queue()
    spk_q: queue.Queue[bytes | None] = queue.Queue()
    stop = threading.Event()

    def open_pcm(kind: int, device: str, *, channels: int, periods: int) -> Any:
        """Plain blocking pyalsaaudio, as a bare client would open the test devices."""
        return alsaaudio.PCM(
            type=kind,
            device=device,
            rate=RATE,
            channels=channels,
            format=alsaaudio.PCM_FORMAT_S16_LE,
            periodsize=PERIOD,
            periods=periods,
        )

    def capture() -> None:
        pcm = open_pcm(alsaaudio.PCM_CAPTURE, "rtmic", channels=1, periods=4)
        while not stop.is_set():
            n, data = pcm.read()
            if n > 0:
                if trace is not None:
                    trace.pcm("capture.read", data)
                loop.call_soon_threadsafe(mic_q.put_nowait, data)
        pcm.close()

    def playback() -> None:
        pcm = open_pcm(alsaaudio.PCM_PLAYBACK, "rtspk", channels=2, periods=2)
        while True:
            data = spk_q.get()
            if data is None:
                break
            pcm.write(data)
            if trace is not None:
                trace.pcm("device.write", data, channels=2)
        pcm.close()

    class Sender(MediaStreamTrack):
        kind = "audio"

        def __init__(self) -> None:
            super().__init__()
            self.n = 0

        async def recv(self) -> Any:
            data = await mic_q.get()
            while mic_q.qsize() > 2:  # bounded, like any live sender
                data = mic_q.get_nowait()
            frame = make_frame(data, self.n * PERIOD)
            self.n += 1
            if trace is not None:
                traced_frame_out(trace, frame)
            return frame

    async def drain(track: MediaStreamTrack) -> None:
        while True:
            try:
                frame: Any = await track.recv()
            except Exception:
                return
            if trace is not None:
                traced_frame_in(trace, "remote.recv", frame)
            spk_q.put(bytes(frame.planes[0])[: frame.samples * 4])
            while spk_q.qsize() > 3:  # bounded, drop-oldest, like any live player
                with contextlib.suppress(queue.Empty):
                    spk_q.get_nowait()

    threads = [
        threading.Thread(target=f, daemon=True, name=f.__name__) for f in (capture, playback)
    ]
    for th in threads:
        th.start()
    tasks: list[asyncio.Task[None]] = []
    pc = await connect_bare(
        calls_url, Sender(), lambda tr: tasks.append(asyncio.ensure_future(drain(tr)))
    )
    try:
        await until(lambda: dac.frames() > RATE // 2, 20)
        await asyncio.sleep(1.5)
        out_before = dac.frames()
        c0, t0, th0, gc0, w0 = (
            cpu_seconds(),
            time.monotonic(),
            thread_cpu(),
            GC.snapshot(),
            wakeups(),
        )
        mic.go()
        await asyncio.sleep(seconds + 1.0)
        c1, t1, th1, gc1, w1 = (
            cpu_seconds(),
            time.monotonic(),
            thread_cpu(),
            GC.snapshot(),
            wakeups(),
        )
    finally:
        await pc.close()
        for t in tasks:
            t.cancel()
        stop.set()
        spk_q.put(None)
        for th in threads:  # devices closed while the mic and the DAC still run
            th.join(2)
        mic.stop()
        dac.stop()
    lat, t_ins = device_latencies(mic, dac, starts, out_before)
    result: dict[str, Any] = {
        "latencies_ms": lat,
        "cpu_s_per_s": (c1 - c0) / (t1 - t0),
        "thread_cpu_s_per_s": thread_cpu_per_s(th0, th1, t1 - t0),
        "gc": gc_per_s(gc0, gc1, t1 - t0),
        "wakeups_per_s": wakeups_per_s(w0, w1),
        "pulses": len(starts),
        "dac_late_ms": round(dac.lateness_ms(), 1),
        "dac_underruns": dac.underruns(t0, t1),
        "mic_late_ms": round(mic.max_late_s * 1000, 1),
    }
    if trace is not None:
        result["trace"] = {"t_in": t_ins, "stages": trace.dump(), "dac": dac_onsets(dac)}
    return result


# ---- driver -----------------------------------------------------------------------------------


def child(role: str, calls_url: str, seconds: float, trace: bool, overrides: list[str]) -> None:
    tr = Trace() if trace else None
    if role.startswith("rtedge"):
        parsed = {}
        for item in overrides:
            key, _, value = item.partition("=")
            parsed[key] = json.loads(value)
        if role == "rtedge_live":
            parsed["realtime.provider"] = "live"
            calls_url = calls_url.replace("/v1/realtime/calls", "/v1/live/sessions")
        result = asyncio.run(run_rtedge(calls_url, seconds, tr, parsed))
    elif role == "bare":
        result = asyncio.run(run_bare(calls_url, seconds, tr))
    else:
        result = asyncio.run(run_bare_alsa(calls_url, seconds, tr))
    print("RESULT " + json.dumps(result))


def spawn(
    role: str,
    calls_url: str,
    seconds: float,
    trace: bool,
    overrides: list[str],
    before: Path | None = None,
) -> dict[str, Any]:
    root = before if role == "rtedge_before" and before is not None else ROOT
    env = dict(os.environ, PYTHONPATH=str(root), RTEDGE_BENCH_ROOT=str(root))
    env.pop("ALSA_CONFIG_PATH", None)
    cmd = [sys.executable, __file__, "--role", role, "--calls-url", calls_url]
    cmd += ["--seconds", str(seconds)]
    if trace:
        cmd.append("--trace")
    for item in overrides:
        cmd += ["--set", item]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return dict(json.loads(line[7:]))
    raise SystemExit(f"{role} run failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}")


def summarize(lat: list[float]) -> dict[str, float]:
    if not lat:
        return {"median_ms": float("nan"), "p90_ms": float("nan"), "n": 0}
    s = sorted(lat)
    return {
        "median_ms": round(statistics.median(s), 1),
        "p90_ms": round(s[min(len(s) - 1, int(0.9 * len(s)))], 1),
        "n": len(s),
    }


def stage_table(tr: dict[str, Any]) -> dict[str, float]:
    """Median time (ms after the period holding the pulse's onset went in) at which the onset
    passed each stage."""
    t_ins: list[float] = tr["t_in"]
    stages: dict[str, list[float]] = dict(tr["stages"])
    if "dac" in tr:
        stages["dac.took"] = tr["dac"]
    table: dict[str, float] = {}
    for name, times in stages.items():
        deltas = []
        for t_in in t_ins:
            # the onset is in the period that went in at t_in (it starts up to 20 ms later)
            after = [t - t_in for t in times if -0.001 <= t - t_in < PULSE_EVERY_S - 0.05]
            if after:
                deltas.append(min(after) * 1000)
        if deltas:
            table[name] = round(statistics.median(deltas), 1)
    return dict(sorted(table.items(), key=lambda kv: kv[1]))


def peer_process(port: int, jitter_buffer: str) -> subprocess.Popen[bytes]:
    """The local peer in loopback mode, with the given receive buffer (``rtedge`` by default,
    as ``rtedge peer`` runs; ``aiortc`` for a service whose receiver holds every frame 80 ms)."""
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "rtedge",
            "peer",
            "--jitter-buffer",
            jitter_buffer,
            "--listen",
            f"127.0.0.1:{port}",
            "--mode",
            "loopback",
            "--log-level",
            "WARNING",
        ],
        env=dict(os.environ, PYTHONPATH=str(ROOT)),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def wait_peer(port: int) -> None:
    deadline = time.monotonic() + 20
    while True:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/_rtedge/stats", timeout=1)
            return
        except OSError:
            if time.monotonic() > deadline:
                raise SystemExit("peer did not start") from None
            time.sleep(0.1)


def rounds(roles: list[str], repeat: int) -> Iterator[str]:
    for i in range(repeat):
        yield from (roles if i % 2 == 0 else list(reversed(roles)))


def main() -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--repeat", type=int, default=1, help="rounds (order alternates)")
    ap.add_argument("--roles", default="bare,bare_alsa,rtedge")
    ap.add_argument("--trace", action="store_true", help="time every stage (costs CPU)")
    ap.add_argument(
        "--set", action="append", default=[], help="rtedge setting, e.g. audio.period_ms=10"
    )
    ap.add_argument(
        "--before",
        type=Path,
        help="another rtedge checkout, measured as role rtedge_before (without --set)",
    )
    ap.add_argument(
        "--peer-jitter-buffer",
        choices=("rtedge", "aiortc"),
        default="rtedge",
        help="the peer's receive buffer (default rtedge, as `rtedge peer` runs)",
    )
    ap.add_argument("--out", type=Path, default=ROOT / "bench-results" / "audio.json")
    ap.add_argument("--role", choices=ROLES)
    ap.add_argument("--calls-url")
    args = ap.parse_args()
    if args.role:
        child(args.role, args.calls_url, args.seconds, args.trace, args.set)
        return 0
    roles = [r for r in args.roles.split(",") if r]
    if args.before is not None and "rtedge_before" not in roles:
        roles.append("rtedge_before")
    port = free_port()
    peer = peer_process(port, args.peer_jitter_buffer)
    calls_url = f"http://127.0.0.1:{port}/v1/realtime/calls"
    runs: dict[str, list[dict[str, Any]]] = {r: [] for r in roles}
    try:
        wait_peer(port)
        for role in rounds(roles, args.repeat):
            sets = [] if role == "rtedge_before" else args.set
            res = spawn(role, calls_url, args.seconds, args.trace, sets, args.before)
            s = summarize(res["latencies_ms"])
            print(
                f"  {role}: median {s['median_ms']} ms p90 {s['p90_ms']} ms "
                f"(n={s['n']}/{res['pulses']}) cpu {res['cpu_s_per_s']:.4f} s/s "
                f"load {os.getloadavg()[0]:.2f}",
                file=sys.stderr,
            )
            busiest = sorted(res["wakeups_per_s"].items(), key=lambda kv: -kv[1])[:4]
            print(
                "    wakeups/s: " + ", ".join(f"{k} {v:.0f}" for k, v in busiest), file=sys.stderr
            )
            runs[role].append(res)
    finally:
        peer.terminate()
        peer.wait(10)
    result: dict[str, Any] = {
        "when": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "seconds": args.seconds,
        "repeat": args.repeat,
        "peer_mode": "loopback",
        "rtedge_settings": args.set,
        "before": str(args.before) if args.before else None,
        "peer_jitter_buffer": args.peer_jitter_buffer,
        "trace": args.trace,
        "load_avg": os.getloadavg()[0],
    }
    for role, rs in runs.items():
        lat = [x for r in rs for x in r["latencies_ms"]]
        medians = [summarize(r["latencies_ms"])["median_ms"] for r in rs]
        cpus = [r["cpu_s_per_s"] for r in rs]
        entry: dict[str, Any] = {
            **summarize(lat),
            "run_medians_ms": medians,
            "cpu_s_per_s": round(statistics.median(cpus), 4),
            "run_cpu_s_per_s": [round(c, 4) for c in cpus],
            "raw_ms": [[round(x, 2) for x in r["latencies_ms"]] for r in rs],
        }
        extras = (
            "drops",
            "playback_xruns",
            "dac_underruns",
            "dac_late_ms",
            "mic_late_ms",
            "thread_cpu_s_per_s",
            "wakeups_per_s",
            "gc",
        )
        for key in (*extras, "silence_periods"):
            if key in rs[0]:
                entry[key] = [r[key] for r in rs]
        if args.trace:
            entry["stages_ms"] = [stage_table(r["trace"]) for r in rs]
        result[role] = entry
    if "bare" in result and "rtedge" in result:
        b, o = result["bare"], result["rtedge"]
        result["latency_ratio"] = round(o["median_ms"] / b["median_ms"], 2)
        result["cpu_ratio"] = round(o["cpu_s_per_s"] / b["cpu_s_per_s"], 2)
    if "bare" in result and "rtedge_before" in result:
        b, o = result["bare"], result["rtedge_before"]
        result["before_latency_ratio"] = round(o["median_ms"] / b["median_ms"], 2)
        result["before_cpu_ratio"] = round(o["cpu_s_per_s"] / b["cpu_s_per_s"], 2)
    if "rtedge_live" in result and "rtedge" in result:
        b, o = result["rtedge"], result["rtedge_live"]
        result["live_latency_ratio_vs_realtime"] = round(o["median_ms"] / b["median_ms"], 2)
        result["live_cpu_ratio_vs_realtime"] = round(o["cpu_s_per_s"] / b["cpu_s_per_s"], 2)
    if "bare_alsa" in result and "rtedge" in result:
        b, o = result["bare_alsa"], result["rtedge"]
        result["latency_ratio_vs_bare_alsa"] = round(o["median_ms"] / b["median_ms"], 2)
        result["cpu_ratio_vs_bare_alsa"] = round(o["cpu_s_per_s"] / b["cpu_s_per_s"], 2)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print("| client | loop median (p90) | run medians | CPU s/s (runs) | DAC underruns |")
    print("| --- | --- | --- | --- | --- |")
    for role in roles:
        e = result[role]
        print(
            f"| {role} | {e['median_ms']} ms ({e['p90_ms']}) | {e['run_medians_ms']} "
            f"| {e['cpu_s_per_s']:.4f} ({', '.join(f'{c:.4f}' for c in e['run_cpu_s_per_s'])}) "
            f"| {e.get('dac_underruns', '-')} |"
        )
    for key in (
        "latency_ratio",
        "cpu_ratio",
        "latency_ratio_vs_bare_alsa",
        "cpu_ratio_vs_bare_alsa",
        "before_latency_ratio",
        "before_cpu_ratio",
        "live_latency_ratio_vs_realtime",
        "live_cpu_ratio_vs_realtime",
    ):
        if key in result:
            print(f"{key}: {result[key]}")
    if args.trace:
        for role in roles:
            print(f"\nstages ({role}), ms after the pulse went in:")
            for table in result[role]["stages_ms"]:
                print("  " + "  ".join(f"{k} {v}" for k, v in table.items()))
    print(f"\n(JSON: {args.out})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
