"""The capture-thread front end fed in step with a simulated speaker and echo path (no device:
the playback side writes the reference tap as the playback thread does, two periods ahead)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("pywebrtc_audio")
pytest.importorskip("pymicro_wakeword")

from rtedge.audio.echo import ReferenceTap  # noqa: E402
from rtedge.audio.frontend import Frontend  # noqa: E402
from rtedge.audio.handsfree_gate import GateEvent  # noqa: E402
from rtedge.settings import AudioSettings  # noqa: E402
from rtedge.settings_handsfree import WakeSettings  # noqa: E402
from tests.handsfree.speech import NEGATIVE_SENTENCES, WAKE_PHRASES, speech  # noqa: E402
from tests.handsfree.test_echo import echo_path  # noqa: E402

RATE = 48000
CAPTURE = 960
PLAYBACK = 480


def gap(seconds: float) -> np.ndarray:
    return np.zeros(int(seconds * RATE), dtype=np.int16)


def room(
    far: np.ndarray,
    user: np.ndarray,
    *,
    echo_cancel: bool,
    delay_ms: float = 40,
    stall_ms: float = 0,
) -> tuple[list[tuple[float, GateEvent]], Frontend, list[np.ndarray]]:
    """Plays ``far`` at the speaker while ``user`` talks; returns the gate events with their
    audio time, the front end, and the periods it would send. ``stall_ms``: the speaker stalls
    that long without saying so (a sink with a buffer of its own that the count cannot see)."""
    n = max(far.size, user.size)
    far = np.pad(far, (0, n - far.size))
    played = far
    if stall_ms:  # from 2 s on the sink plays ``stall_ms`` later than before, unseen
        at, stall = 2 * RATE, int(stall_ms * RATE / 1000)
        played = np.concatenate([far[:at], np.zeros(stall, far.dtype), far[at : n - stall]])
    mic = echo_path(played.astype(np.float64), RATE, delay_ms, 0.6)
    mic += np.pad(user, (0, n - user.size)) * 0.5
    mic += np.random.default_rng(3).normal(0, 15, n)
    mic16 = np.clip(mic, -32768, 32767).astype(np.int16)
    now = [0.0]  # the simulated card's clock: the capture period just taken ends now
    tap = ReferenceTap(RATE, 2, clock=lambda: now[0])
    events: list[tuple[float, GateEvent]] = []
    front = Frontend(
        AudioSettings(echo_cancel=echo_cancel),
        WakeSettings(enabled=True, model="hey_jarvis"),
        tap=tap,
        period_frames=CAPTURE,
        on_event=lambda e: events.append((pos / RATE, e)),
        clock=lambda: now[0],
    )
    sent: list[np.ndarray] = []
    written = 0
    for pos in range(0, n - CAPTURE + 1, CAPTURE):
        now[0] = (pos + CAPTURE) / RATE
        # the playback thread keeps the device two periods ahead of what is heard
        while written < pos + CAPTURE + 2 * PLAYBACK and written + PLAYBACK <= n:
            block = far[written : written + PLAYBACK]
            tap.write(written, np.repeat(block, 2), queued=2 * PLAYBACK)
            written += PLAYBACK
        out, gate_open = front.process(mic16[pos : pos + CAPTURE])
        if gate_open:
            sent.extend(out)
    return events, front, sent


def assistant_saying_the_wake_word() -> np.ndarray:
    lines = [
        "Sure. You said hey Jarvis, what time is it? It is ten past four.",
        "Hey Jarvis is my name. The lights in the kitchen are on now.",
        "Okay. Hey Jarvis, set a timer for ten minutes, you asked. Done.",
    ]
    return np.concatenate([np.concatenate([speech(t), gap(0.4)]) for t in lines])


def test_the_assistants_own_wake_word_through_the_echo_does_not_wake_it() -> None:
    far = assistant_saying_the_wake_word()
    events, front, sent = room(far, gap(0), echo_cancel=True)
    assert events == []
    assert sent == []
    assert front.canceller is not None and front.canceller.erle_db is not None
    assert front.canceller.erle_db >= 30, front.canceller.erle_db
    assert front.canceller.delay_ms is not None


def test_without_echo_cancellation_the_same_room_wakes_it() -> None:
    # the test above can fail: the echo of those replies does fire the model
    events, _, _ = room(assistant_saying_the_wake_word(), gap(0), echo_cancel=False)
    assert any(e is GateEvent.WAKE for _, e in events)


def test_the_user_wakes_it_while_the_assistant_talks() -> None:
    far = np.concatenate([speech(s) for s in NEGATIVE_SENTENCES[:4]])  # the assistant talking
    user_phrases = []
    user = gap(0)
    for i, phrase in enumerate(WAKE_PHRASES[:3]):
        start = int((2.0 + 4.0 * i) * RATE)
        user = np.pad(user, (0, max(0, start - user.size)))
        pcm = speech(phrase)
        user = np.concatenate([user[:start], pcm])
        user_phrases.append(start / RATE)
    user = np.concatenate([user, gap(1.5)])
    events, front, sent = room(far, user, echo_cancel=True)
    wakes = [t for t, e in events if e is GateEvent.WAKE]
    assert len(wakes) == 3, events
    for at, spoken in zip(wakes, user_phrases, strict=True):
        assert spoken < at < spoken + 2.0
    assert sent  # each opened turn streams


def test_a_long_echo_path_stays_cancelled() -> None:
    # the speaker stalls 300 ms unseen by either clock: the echo now lags its reference by
    # ~340 ms, which AEC3 finds again: nothing is moved (while it re-converges it may be; in
    # the end it cancels at the long delay or at the target)
    far = np.concatenate([speech(s) for s in NEGATIVE_SENTENCES[:4]])
    events, front, _ = room(far, gap(0), echo_cancel=True, stall_ms=300)
    assert events == [] and front.realigns <= 1
    assert front.canceller is not None and front.canceller.delay_ms is not None
    assert front.canceller.delay_ms >= 300 or abs(front.canceller.delay_ms - 60) <= 10
    assert front.canceller.erle_db is not None and front.canceller.erle_db >= 30


def test_a_measured_echo_lag_out_of_range_moves_the_reference_to_the_target() -> None:
    tap = ReferenceTap(RATE, 1, clock=lambda: 1.0)
    tap.write(0, np.arange(RATE, dtype=np.int16), queued=0)
    front = Frontend(
        AudioSettings(echo_cancel=True),
        None,
        tap=tap,
        period_frames=CAPTURE,
        on_event=lambda e: None,
        clock=lambda: 1.0,
    )
    assert front.canceller is not None
    front.process(np.zeros(CAPTURE, dtype=np.int16))
    before = front.read_behind
    front.canceller.realign_ms = -80.0  # the echo came 80 ms before its reference
    front.process(np.zeros(CAPTURE, dtype=np.int16))  # moved after this period's read
    front.process(np.zeros(CAPTURE, dtype=np.int16))
    # read 140 ms further on (newer), so that the echo lags it by 60 ms; once
    assert before - front.read_behind == round(0.14 * RATE) + 2 * CAPTURE
    assert front.realigns == 1 and front.canceller.realign_ms is None


#: Run in a fresh interpreter, so that no other test's threads are there: the front end in a
#: room while the assistant talks (every stage working, the echo's delay estimated every
#: second while AEC3 converges), and the CPU each of the process's threads spent meanwhile,
#: from /proc (numpy's import alone keeps BLAS threads busy for a few ticks: not counted).
THREADS_SCRIPT = """
import json, os, threading
import numpy as np
from tests.handsfree.speech import NEGATIVE_SENTENCES, speech
from tests.handsfree.test_frontend import gap, room

def ticks():
    out = {}
    for tid in os.listdir("/proc/self/task"):
        with open(f"/proc/self/task/{tid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        out[int(tid)] = int(fields[11]) + int(fields[12])
    return out

far = np.concatenate([speech(s) for s in NEGATIVE_SENTENCES[:3]])
before = ticks()
room(far, gap(0), echo_cancel=True)
spent = {t: n - before.get(t, 0) for t, n in ticks().items()}
main = spent.pop(threading.get_native_id())
print(json.dumps({"main": main, "others": sorted(spent.values())}))
"""


def test_the_front_end_works_on_the_capture_thread_alone() -> None:
    # Its cost is counted per thread (``cpu_percent`` in /status), and helper threads would
    # compete with the playback thread: numpy's BLAS spreads a dot product over 10 000 samples
    # across every core and then spins them idle, which once cost as much as the whole front
    # end (the delay estimate's norms).
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run(
        [sys.executable, "-c", THREADS_SCRIPT],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    ticks = json.loads(done.stdout.splitlines()[-1])
    assert ticks["main"] > 0
    # a tick is 10 ms; BLAS threads may still spin a few from numpy's import (before: 20 over
    # this run, as many as a third of the front end's own)
    assert sum(ticks["others"]) <= 3, ticks
