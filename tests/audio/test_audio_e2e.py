"""Audio end to end: the appliance (in this process, so the test can hold gpiozero's mock
button) against ``rtedge peer --mode echo`` (a real process) over real WebRTC on loopback,
with the microphone and speaker on real ALSA (file plugin; the mic is a FIFO fed in real
time)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("rtedge.peer.server", reason="needs the local peer (rtedge peer)")
pytest.importorskip("rtedge.display.pipeline", reason="the appliance imports the display")
pytestmark = pytest.mark.media  # voice fidelity end to end, judged in real time

from gpiozero import Device  # noqa: E402
from gpiozero.pins.mock import MockFactory  # noqa: E402

from rtedge.app import Appliance  # noqa: E402
from rtedge.demo import speech_pcm  # noqa: E402
from rtedge.settings import Settings  # noqa: E402
from rtedge.state import Connection, Turn  # noqa: E402
from tests.audio.alsa_rig import AlsaRig, FifoDrain, MicFeeder, feed_mic, sine  # noqa: E402
from tests.poll import until  # noqa: E402
from tests.support import Peer, free_port  # noqa: E402

RATE = 48000
PERIOD = 960
PIN = 17


def best_match(haystack: np.ndarray, needle: np.ndarray) -> tuple[int, float]:
    h = haystack.astype(np.float64)
    n = needle.astype(np.float64)
    size = 1 << int(np.ceil(np.log2(h.size + n.size)))
    corr = np.fft.irfft(np.fft.rfft(h, size) * np.conj(np.fft.rfft(n, size)), size)[: h.size]
    lag = int(np.argmax(corr))
    seg = h[lag : lag + n.size]
    if seg.size < n.size:
        seg = np.pad(seg, (0, n.size - seg.size))
    return lag, float(np.dot(seg, n) / (np.linalg.norm(seg) * np.linalg.norm(n) + 1e-9))


def best_offset(window: np.ndarray, part: np.ndarray) -> int:
    """Where ``part`` fits ``window`` best by normalised cross-correlation (the raw one would
    favour the loudest stretch of the window)."""
    size = 1 << int(np.ceil(np.log2(window.size + part.size)))
    valid = window.size - part.size + 1
    corr = np.fft.irfft(np.fft.rfft(window, size) * np.conj(np.fft.rfft(part, size)), size)
    energy = np.concatenate(([0.0], np.cumsum(window * window)))
    norms = np.sqrt(np.maximum(energy[part.size :] - energy[:valid], 0.0)) + 1e-9
    return int(np.argmax(corr[:valid] / norms))


def match_in_order(
    out: np.ndarray, ref: np.ndarray, piece: int = 5 * PERIOD, max_slip: int = RATE // 10
) -> tuple[int, float, int]:
    """Find ``ref`` in ``out`` allowing slips: (lag, correlation coefficient, slip).

    Under CPU load the path loses or inserts audio now and then: a frame that comes late is
    replaced by silence (at the speaker, and in the mic track), and a burst that overflows the
    playout buffer loses its oldest samples (any number of them, not whole frames). The rest
    of the reply then sits that much later or earlier than where it began, and one alignment
    for the whole reply would score that rest as noise. So each 0.1 s piece of ``ref`` is
    placed where it matches best within ``max_slip`` samples of the previous piece's lag, and
    the coefficient is over all pieces as placed. ``slip`` is where the last piece ended up
    relative to ``lag``, in samples."""
    lag, _ = best_match(out, ref)
    h = out.astype(np.float64)
    n = ref.astype(np.float64)
    placed = np.zeros_like(n)
    at = lag
    for start in range(0, n.size, piece):
        part = n[start : start + piece]
        lo = max(0, at + start - max_slip)
        window = h[lo : at + start + part.size + max_slip]
        if np.sqrt(np.mean((part / 32768) ** 2)) > 0.005 and window.size >= part.size:
            at = lo + best_offset(window, part) - start  # voiced: place it
        a = at + start
        seg = h[max(0, a) : a + part.size]
        placed[start : start + seg.size] = seg
    coef = float(np.dot(placed, n) / (np.linalg.norm(placed) * np.linalg.norm(n) + 1e-9))
    return lag, coef, at - lag


def voiced_periods(x: np.ndarray, threshold: float = 0.005) -> int:
    frames = x[: x.size // PERIOD * PERIOD].reshape(-1, PERIOD).astype(np.float64) / 32768
    return int((np.sqrt((frames**2).mean(axis=1)) > threshold).sum())


class Rig:
    def __init__(self, tmp: Path) -> None:
        self.alsa = AlsaRig(tmp)
        self.alsa.write_conf(capture_copy=True)
        self.feeder: MicFeeder
        self.drain: FifoDrain | None
        self.feeder, self.drain = self.alsa.make_mic(capture_copy=True)
        self.feeder.start()
        self.alsa.make_speaker()
        self.peer = Peer(tmp, "--mode", "echo").start()
        self.pin_factory = MockFactory()
        self.app: Appliance | None = None
        self.flushes: list[float] = []

    def speaker(self) -> np.ndarray:
        """Left channel of everything the speaker played so far."""
        return self.alsa.speaker_samples().reshape(-1, 2)[:, 0]

    def speaker_tail(self, seconds: float) -> np.ndarray:
        """Left channel of the last ``seconds`` the speaker played (cheap to poll)."""
        if not self.alsa.spk_path.exists():
            return np.zeros(0, dtype=np.int16)
        size = self.alsa.spk_path.stat().st_size
        frame = 2 * 2  # s16 stereo
        want = int(seconds * RATE) * frame
        with open(self.alsa.spk_path, "rb") as f:
            f.seek(max(0, size - want) // frame * frame)
            data = f.read(want)
        return np.frombuffer(data[: len(data) // frame * frame], dtype=np.int16)[::2]

    async def played_out(self, app: Appliance) -> None:
        """The reply is over and the speaker has played all of it: the turn is back to idle and
        the speaker has been silent for 0.3 s (``idle`` comes when the service has sent the
        reply, which plays out later, the later the busier the machine)."""
        await until(lambda: app.state.turn is Turn.IDLE, within=30)
        await until(lambda: voiced_periods(self.speaker_tail(0.3)) == 0, within=10)

    def close(self) -> None:
        self.feeder.stop()
        if self.drain is not None:
            self.drain.close()
        self.peer.kill()


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    r = Rig(tmp_path)
    old = Device.pin_factory
    Device.pin_factory = r.pin_factory
    try:
        yield r
    finally:
        Device.pin_factory = old
        r.close()


@pytest.fixture
async def app(rig: Rig) -> AsyncIterator[Appliance]:
    settings = Settings.model_validate(
        {
            "realtime": {
                "provider": "local",
                "url": rig.peer.calls_url,
                "api_key": "test-key",
                "connect_timeout_s": 5,
                "liveness_timeout_s": 10,
            },
            "audio": {
                "capture_device": "rtmic",
                "playback_device": "rtspk",
                "earcons": False,
                "reopen_initial_s": 0.2,
                "reopen_max_s": 0.5,
            },
            "ptt": {"gpio_pin": PIN},
            "display": {"backend": "none"},
            "health": {"listen": f"127.0.0.1:{free_port()}"},
            "reconnect": {"initial_s": 0.3, "max_s": 2, "jitter": 0.1},
        }
    )
    appliance = Appliance(settings)
    rig.app = appliance
    flush = appliance.audio.flush

    def recording_flush() -> None:
        rig.flushes.append(appliance.audio.played_seconds())
        flush()

    appliance.audio.flush = recording_flush  # type: ignore[method-assign]
    stop = asyncio.Event()
    task = asyncio.create_task(appliance.run(stop))
    try:
        await until(lambda: appliance.state.connection is Connection.CONNECTED, within=10)
        yield appliance
    finally:
        stop.set()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(task, 8)


async def synth(text: str) -> np.ndarray:
    """Speech for the mic, made off the event loop: the appliance runs on this loop, and
    espeak-ng takes a few hundred ms under load, long enough to stall its audio (a burst of
    held-up frames then overflows the playback buffer). Analysis runs off the loop too."""
    return await asyncio.to_thread(speech_pcm, text)


async def say(rig: Rig, app: Appliance, pcm: np.ndarray, hold_after: float = 0.2) -> None:
    """Hold the mock button while ``pcm`` plays into the mic, then let go."""
    pin: Any = rig.pin_factory.pin(PIN)
    pin.drive_low()
    await until(lambda: app.state.turn is Turn.LISTENING, within=2)
    await feed_mic(rig.feeder, pcm)
    await asyncio.sleep(hold_after)  # held a moment past the speech: the test's input
    pin.drive_high()


async def test_held_speech_is_echoed_and_released_audio_is_not_sent(
    rig: Rig, app: Appliance
) -> None:
    # a loud tone while the button is up: it must never reach the service
    await feed_mic(rig.feeder, sine(600, 1.0, RATE, 0.5))
    speech = await synth("Testing the microphone, one two three.")
    start = rig.speaker().size
    await say(rig, app, speech)
    await until(lambda: app.state.turn is Turn.SPEAKING, within=10)
    await rig.played_out(app)
    drops = app.state.queue_drops["playback"]  # before the analysis below, which takes a while
    out = rig.speaker()[start:]
    lag, coef, slip = await asyncio.to_thread(match_in_order, out, speech)
    assert coef > 0.7, coef  # the reply is our own voice, through Opus twice
    assert voiced_periods(out) * PERIOD / RATE == pytest.approx(
        voiced_periods(speech) * PERIOD / RATE, abs=0.3
    )
    assert abs(slip) / RATE <= 0.3, slip  # frames late or lost on the way: a few at most
    # nothing else came back: the second of tone fed while released is nowhere in the reply
    end = lag + slip + speech.size
    outside = np.concatenate((out[: max(0, lag - PERIOD)], out[end + PERIOD :]))
    assert voiced_periods(outside) == 0, voiced_periods(outside)
    # A burst later than the playout buffer's 80 ms allowance is dropped by design (latency stays
    # bounded); a machine busy beside the test can hold the loop up that long once or twice (seen:
    # 8 periods with two busy loops). What a listener would notice stays bounded: a tenth of a
    # second at most, and the voiced length and slip checks above hold.
    assert drops * 10 / 1000 <= 0.1, drops  # playback periods of 10 ms


async def test_press_during_reply_cuts_the_speaker_within_one_period(
    rig: Rig, app: Appliance
) -> None:
    speech = await synth("Please tell me a long story about the sea and the mountains and the sky.")
    await say(rig, app, speech)
    await until(lambda: app.state.turn is Turn.SPEAKING, within=10)
    await until(lambda: app.audio.speaker_level() > 0.01, within=5)
    await asyncio.sleep(0.8)  # into the reply: the test's input
    pin: Any = rig.pin_factory.pin(PIN)
    pin.drive_low()  # barge in
    await until(lambda: app.state.turn is Turn.LISTENING, within=2)
    await asyncio.sleep(1.0)  # held through what would have been the reply: the test's input
    pin.drive_high()
    assert rig.flushes, "the press did not flush the speaker"
    at = round(rig.flushes[-1] * RATE) - app.audio.playback.device_origin
    end = at + PERIOD + int(0.8 * RATE)
    await until(lambda: rig.speaker().size >= end, 5, "0.8 s at the speaker after the cut")
    out = rig.speaker()
    assert voiced_periods(out[at - 10 * PERIOD : at]) >= 5  # it was speaking
    after = out[at + PERIOD : at + PERIOD + int(0.8 * RATE)]
    assert after.size and voiced_periods(after) == 0, voiced_periods(after)
    call = rig.peer.active_call()
    assert call is not None
    sent = call["client_events"]
    assert "response.cancel" in sent and "output_audio_buffer.clear" in sent


async def test_capture_failing_mid_call_is_reopened_and_the_call_survives(
    rig: Rig, app: Appliance
) -> None:
    call_id = app.state.call_id
    assert app.state.devices["capture"].ok
    rig.alsa.vanish_mic()  # the USB mic is pulled: reads fail, reopening fails
    assert rig.drain is not None
    rig.drain.close()
    await until(lambda: not app.state.devices["capture"].ok, within=3)
    assert any("capture unavailable" in p for p in app.state.problems())
    await asyncio.sleep(2.0)  # a window: the call stays up meanwhile (RTP flows: silence)
    assert app.state.connection is Connection.CONNECTED and app.state.call_id == call_id
    rig.feeder.stop()
    rig.feeder, rig.drain = rig.alsa.make_mic(capture_copy=True)  # plugged back in
    rig.feeder.start()
    await until(lambda: app.state.devices["capture"].ok, within=5)
    speech = await synth("Back again.")
    start = rig.speaker().size
    await say(rig, app, speech)
    await until(lambda: app.state.turn is Turn.SPEAKING, within=10)
    await rig.played_out(app)
    _, coef, _ = await asyncio.to_thread(match_in_order, rig.speaker()[start:], speech)
    assert coef > 0.7, coef
    assert app.state.call_id == call_id
