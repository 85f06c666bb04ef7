"""The room, as its own process: reads what the speaker plays (a FIFO the ALSA file plugin
writes), sends it back into the microphone FIFO through an echo path (a delay, attenuation, a
few reflections, optionally a slow drift) mixed with a user's speech, in real time.

Run: python -m tests.handsfree.room_helper SPEAKER_FIFO MIC_FIFO DELAY_MS GAIN DRIFT_PPM RECORD
(RECORD: a file that gets everything the speaker played, mono 48 kHz s16).
Commands on stdin, one JSON object a line:
  {"say": "/path/pcm.raw", "gain": 0.5, "id": 3}  mix that mono 48 kHz s16 into the mic now
  {"speaker_log": 12345.6}  the speaker's level per 20 ms period since that monotonic time
Answers on stdout, one JSON object a line: {"said": 3, "start": t, "end": t} when an utterance
has been fed, {"speaker_log": [[t, rms], ...], "arrivals": [[t, rms], ...], "gaps": [t, ...]}
(per 20 ms of the room's time, per chunk as the speaker's device was handed it, and when
the speaker's stream came late, which moves the echo path like an underrun would).
"""

from __future__ import annotations

import collections
import contextlib
import json
import os
import sys
import threading
import time

import numpy as np

RATE = 48000
PERIOD = 960
REFLECTIONS = ((0.0, 1.0), (0.007, 0.35), (0.019, 0.15), (0.031, 0.07))


class Room:
    def __init__(
        self, spk: str, mic: str, delay_ms: float, gain: float, drift_ppm: float, record: str
    ) -> None:
        self.record = open(record, "wb")  # noqa: SIM115 (open for the process's life)
        self.spk_fd = os.open(spk, os.O_RDONLY | os.O_NONBLOCK)
        # non-blocking: a period the capture has not taken in time is lost, as with a real mic
        self.mic_fd = os.open(mic, os.O_WRONLY | os.O_NONBLOCK)
        taps = np.zeros(int(RATE * (delay_ms / 1000 + REFLECTIONS[-1][0])) + 1)
        for extra, g in REFLECTIONS:
            taps[int(RATE * (delay_ms / 1000 + extra))] += gain * g
        self.taps = taps
        self.history = np.zeros(taps.size - 1)
        self.drift = drift_ppm * 1e-6
        self.t0 = time.monotonic()
        self._chunks: collections.deque[tuple[int, np.ndarray]] = collections.deque()
        self._end = 0  # speaker-timeline index after the last sample handed over
        self.mic_overruns = 0
        self.gaps: list[float] = []  # when the speaker's stream came late (the echo path moved)
        self._out_pos = -float(PERIOD)  # where the next period played starts
        self.speech: collections.deque[tuple[int, np.ndarray, float, list[float]]] = (
            collections.deque()
        )
        self.level_log: collections.deque[tuple[float, float]] = collections.deque(maxlen=6000)
        self.arrivals: collections.deque[tuple[float, float]] = collections.deque(maxlen=12000)
        self.lock = threading.Lock()
        self.out = sys.stdout
        self.out_lock = threading.Lock()

    def emit(self, obj: object) -> None:
        with self.out_lock:
            self.out.write(json.dumps(obj) + "\n")
            self.out.flush()

    def speaker_period(self, now: float) -> np.ndarray:
        """The 20 ms the speaker played just before ``now``. The speaker is a DAC that plays
        what it is handed as it arrives and without a gap after what it played before (the
        file plugin hands it over a device buffer at a time): so the echo path's delay is the
        writer's timing, steady, whatever this process's own schedule does."""
        while True:
            try:
                chunk = os.read(self.spk_fd, 65536)
            except BlockingIOError:
                break
            if not chunk:
                break
            mono = np.frombuffer(chunk[: len(chunk) // 4 * 4], dtype=np.int16)[::2]
            if not mono.size:
                continue
            # a real device's buffer is dropped at a flush, this FIFO keeps it: the stop of
            # the speaker is judged by when the device was handed the audio
            self.arrivals.append((now, float(np.sqrt(np.mean((mono / 32768) ** 2)))))
            # Played right after what came before it, unless the stream fell behind by more
            # than this room reads late (its 20 ms step and some scheduling): an underrun,
            # after which it plays as it comes. Re-anchoring on every small lateness instead
            # would ratchet the speaker's latency up for ever (the echo path would wander).
            at = self._end
            if self._index(now) > self._end + RATE // 20 or not self._end:
                at = self._index(now)
                if self._end:
                    self.gaps.append(now)
            self._chunks.append((at, mono.astype(np.float64)))
            self._end = at + mono.size
        # Drift: the speaker's clock runs a little fast or slow against the mic's.
        span = PERIOD * (1 + self.drift)
        lo = self._out_pos
        if self._index(now) - lo > RATE // 5:  # this process was held up: catch up, as a mic
            lo = self._index(now) - PERIOD
        hi = lo + span
        self._out_pos = hi
        first, last = int(np.floor(lo)), int(np.ceil(hi)) + 1
        raw = np.zeros(last - first)
        while self._chunks and self._chunks[0][0] + self._chunks[0][1].size <= first:
            self._chunks.popleft()
        for at, arr in self._chunks:
            if at >= last:
                break
            a, b = max(at, first), min(at + arr.size, last)
            raw[a - first : b - first] = arr[a - at : b - at]
        if self.drift:
            mono_out = np.interp(
                np.linspace(lo, hi, PERIOD, endpoint=False) - first, np.arange(raw.size), raw
            )
        else:
            mono_out = raw[int(lo) - first : int(lo) - first + PERIOD]
        self.record.write(mono_out.astype(np.int16).tobytes())
        rms = float(np.sqrt(np.mean((mono_out / 32768) ** 2)))
        self.level_log.append((now, rms))
        return mono_out

    def _index(self, t: float) -> int:
        return int((t - self.t0) * RATE)

    def echo(self, spk: np.ndarray) -> np.ndarray:
        x = np.concatenate((self.history, spk))
        y = np.convolve(x, self.taps, mode="valid")
        self.history = x[-(self.taps.size - 1) :]
        return y

    def user_period(self, now: float) -> np.ndarray:
        out = np.zeros(PERIOD)
        with self.lock:
            while self.speech:
                uid, pcm, gain, times = self.speech[0]
                pos = int(times[0])
                if pos == 0:
                    times.append(now)
                part = pcm[pos : pos + PERIOD]
                out[: part.size] += part * gain
                times[0] = pos + part.size
                if pos + PERIOD >= pcm.size:
                    self.speech.popleft()
                    self.emit({"said": uid, "start": times[1], "end": now + part.size / RATE})
                    continue
                break
        return out

    def run(self) -> None:
        rng = np.random.default_rng(7)
        next_t = self.t0
        while True:
            now = time.monotonic()
            mic = self.echo(self.speaker_period(now)) + self.user_period(now)
            mic += rng.normal(0, 10, PERIOD)  # the room's own noise floor (about -70 dBFS)
            data = np.clip(mic, -32768, 32767).astype(np.int16).tobytes()
            try:
                os.write(self.mic_fd, data)
            except BlockingIOError:
                self.mic_overruns += 1  # the capture did not take it in time: lost
            except OSError:
                return
            next_t += PERIOD / RATE
            delay = next_t - time.monotonic()
            if delay < -0.1:
                next_t = time.monotonic()  # held up: a real mic would have lost it
            elif delay > 0:
                time.sleep(delay)

    def commands(self) -> None:
        for line in sys.stdin:
            cmd = json.loads(line)
            if "say" in cmd:
                pcm = np.fromfile(cmd["say"], dtype=np.int16).astype(np.float64)
                with self.lock:
                    self.speech.append((cmd.get("id", 0), pcm, float(cmd.get("gain", 0.5)), [0]))
            elif "speaker_log" in cmd:
                since = float(cmd["speaker_log"])
                log = [[t, round(r, 5)] for t, r in list(self.level_log) if t >= since]
                arrived = [[t, round(r, 5)] for t, r in list(self.arrivals) if t >= since]
                gaps = [t for t in self.gaps if t >= since]
                self.emit(
                    {
                        "speaker_log": log,
                        "arrivals": arrived,
                        "gaps": gaps,
                        "mic_overruns": self.mic_overruns,
                    }
                )
        os._exit(0)  # stdin closed: the test is over


def keep_time() -> None:
    """The room is hardware: it keeps time on a loaded machine (SCHED_FIFO where allowed, else
    a higher priority), so its echo path does not wander with the load the test runs under."""
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(20))
    except (OSError, AttributeError):
        with contextlib.suppress(OSError):
            os.nice(-10)


def main() -> None:
    keep_time()
    spk, mic, delay_ms, gain = sys.argv[1], sys.argv[2], float(sys.argv[3]), float(sys.argv[4])
    drift, record = float(sys.argv[5]), sys.argv[6]
    room = Room(spk, mic, delay_ms, gain, drift, record)
    threading.Thread(target=room.commands, daemon=True).start()
    room.run()


if __name__ == "__main__":
    main()
