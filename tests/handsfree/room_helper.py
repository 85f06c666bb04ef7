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
#: A tick reached later than this is not caught up on (the machine stopped, not the card).
MAX_CATCH_UP_S = 2.0
#: The DAC starts (and restarts after an underrun) once it holds this much, as a card does.
START_FRAMES = 2 * PERIOD
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
        # the DAC's buffer: what the driver handed over and the speaker has not played yet
        self._buffer: collections.deque[np.ndarray] = collections.deque()
        self._buffered = 0
        self._priming = True
        self._frac = 0.0
        self.mic_overruns = 0
        self.gaps: list[float] = []  # speaker underruns (the echo path moved)
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
        """The period the speaker plays at this tick of the room's clock.

        The room is one sound card with one crystal: at every tick its DAC plays exactly one
        period out of its buffer and its ADC captures exactly one period (``run``), so the
        echo's delay in samples is fixed by the hardware. What the driver hands over joins the
        DAC's buffer; a tick that finds less than a period there is an underrun: the rest of
        the period is silence, and what comes later plays that much later (the echo path moves,
        as it does on a real card; the daemon sees it by its own clock)."""
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
            self.arrivals.append((time.monotonic(), float(np.sqrt(np.mean((mono / 32768) ** 2)))))
            self._buffer.append(mono.astype(np.float64))
            self._buffered += mono.size
        # Drift: the speaker's clock runs a little fast or slow against the mic's.
        self._frac += PERIOD * (1 + self.drift)
        take = int(self._frac)
        self._frac -= take
        if self._priming and self._buffered >= START_FRAMES:
            self._priming = False
        # until the buffer holds its start threshold (as ALSA's start_threshold), silence
        raw = np.zeros(take + 1) if self._priming else self._pop(take + 1 if self.drift else take)
        if self.drift:
            at = np.linspace(0, take, PERIOD, endpoint=False)
            mono_out = np.interp(at, np.arange(raw.size), raw)
            if not self._priming:
                self._push_front(raw[take:])
        else:
            mono_out = raw[:take]
        self.record.write(mono_out.astype(np.int16).tobytes())
        rms = float(np.sqrt(np.mean((mono_out / 32768) ** 2)))
        self.level_log.append((now, rms))
        return mono_out

    def _pop(self, n: int) -> np.ndarray:
        out = np.zeros(n)
        got = 0
        while got < n and self._buffer:
            head = self._buffer[0]
            part = head[: n - got]
            out[got : got + part.size] = part
            got += part.size
            if part.size == head.size:
                self._buffer.popleft()
            else:
                self._buffer[0] = head[part.size :]
        self._buffered -= got
        if got < n:
            self.gaps.append(time.monotonic())  # an underrun: the echo path moved by n - got
            self._priming = True
        return out

    def _push_front(self, rest: np.ndarray) -> None:
        if rest.size:
            self._buffer.appendleft(rest)
            self._buffered += rest.size

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
        """One crystal: per tick one period played and one period captured, in lockstep. A tick
        this process reaches late is still played and captured (a burst), as the hardware
        would have done it on time: the room never skips a period, so neither side's sample
        count slips against the other; a mic period the capture has no room for is lost (an
        overrun), as on a card."""
        rng = np.random.default_rng(7)
        tick = time.monotonic()
        while True:
            end = tick + PERIOD / RATE
            delay = end - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            elif delay < -MAX_CATCH_UP_S:
                end = time.monotonic()  # this machine stopped for seconds: start afresh
            mic = self.echo(self.speaker_period(end)) + self.user_period(end)
            mic += rng.normal(0, 10, PERIOD)  # the room's own noise floor (about -70 dBFS)
            data = np.clip(mic, -32768, 32767).astype(np.int16).tobytes()
            try:
                os.write(self.mic_fd, data)
            except BlockingIOError:
                self.mic_overruns += 1  # the capture did not take it in time: lost
            except OSError:
                return
            tick = end

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
