"""Unit tests of the peer's parts that have logic of their own (no network)."""

from __future__ import annotations

import asyncio
import time

import numpy as np
import pytest

from rtedge.media.dsp import FRAME_SAMPLES, dbfs
from rtedge.peer import avatar, brain, faults
from rtedge.peer.audio_in import EnergyVad, InputAudio
from rtedge.peer.audio_out import OutputTrack, Playout
from rtedge.peer.keys import AuthError, KeyStore
from rtedge.peer.voice import tone_voice, word_times

RATE = 48_000


def tone(seconds: float, level: float = 0.3) -> np.ndarray:
    t = np.arange(int(seconds * RATE)) / RATE
    return (np.sin(2 * np.pi * 300 * t) * level * 32767).astype(np.int16)


async def test_output_track_paces_and_clear_silences_next_frame() -> None:
    started: list[str] = []
    drained: list[str] = []
    track = OutputTrack(
        lambda p: started.append(p.response_id), lambda p: drained.append(p.response_id)
    )
    p = Playout("resp_1", "item_1")
    p.add(tone(0.2))
    track.play(p)
    t0 = time.monotonic()
    levels = []
    for _ in range(5):
        frame = await track.recv()
        assert frame.samples == FRAME_SAMPLES and frame.sample_rate == RATE
        levels.append(np.abs(frame.to_ndarray()).max())
    assert started == ["resp_1"] and min(levels) > 1000
    dropped = track.clear()
    assert dropped == [p] and p.played_ms == 100
    frame = await track.recv()
    assert np.abs(frame.to_ndarray()).max() == 0  # the very next frame is silence
    assert 0.08 <= time.monotonic() - t0 <= 0.2  # paced: 6 frames = 120 ms, first one at once
    assert drained == []  # a cleared playout never "drains"
    track.stop()


async def test_output_track_drain_and_underrun() -> None:
    drained: list[Playout] = []
    track = OutputTrack(lambda p: None, drained.append)
    p = Playout("r", "i")
    p.add(tone(0.03))
    track.play(p)
    await track.recv()
    await track.recv()  # generation has not finished: underrun gives silence, no drain
    assert drained == [] and track.playing is p
    p.finished = True
    await track.recv()
    assert drained == [p] and track.playing is None
    track.stop()


async def test_output_track_pause_blocks_until_resume() -> None:
    track = OutputTrack(lambda p: None, lambda p: None)
    await track.recv()
    track.pause()
    pending = asyncio.ensure_future(track.recv())
    await asyncio.sleep(0.1)
    assert not pending.done()
    track.resume()
    await asyncio.wait_for(pending, 1)
    track.stop()


def test_vad_start_stop_and_prefix() -> None:
    buf = InputAudio(max_s=10)
    buf.configure(
        {
            "type": "server_vad",
            "threshold": 0.5,
            "prefix_padding_ms": 300,
            "silence_duration_ms": 200,
        }
    )
    events = []
    for chunk in (
        [np.zeros(960, np.int16)] * 50 + [tone(0.02)] * 20 + [np.zeros(960, np.int16)] * 20
    ):
        ev = buf.push(chunk)
        if ev:
            events.append((ev.kind, ev.ms))
            if ev.kind == "speech_stopped":
                # What a commit now takes: the prefix padding, the speech, the closing silence.
                assert buf.buffered_ms == pytest.approx(300 + 400 + 200, abs=25)
    assert events == [("speech_started", 700), ("speech_stopped", 1600)]
    assert buf.buffered_ms == pytest.approx(300, abs=25)  # between turns: only the prefix kept


def test_vad_threshold_maps_to_level() -> None:
    quiet = tone(0.02, level=0.002)  # about -57 dBFS
    assert dbfs(quiet) < -50
    assert EnergyVad({"type": "server_vad", "threshold": 0.5}).threshold_db == -45
    sensitive = EnergyVad({"type": "server_vad", "threshold": 0.1})
    deaf = EnergyVad({"type": "server_vad", "threshold": 0.9})
    assert [sensitive.feed(quiet, 20), sensitive.feed(quiet, 40)][-1] is not None
    assert deaf.feed(quiet, 20) is None and deaf.feed(quiet, 40) is None


def test_semantic_vad_uses_eagerness() -> None:
    assert EnergyVad({"type": "semantic_vad", "eagerness": "high"}).silence_ms == 400
    assert EnergyVad({"type": "semantic_vad", "eagerness": "low"}).silence_ms == 1500


def test_input_timeline_goes_on_with_the_clock_while_audio_is_held_up() -> None:
    buf = InputAudio(max_s=10)
    frame = np.zeros(960, np.int16)
    t0 = 100.0
    for k in range(1, 51):  # a second of audio, each frame arriving 30 ms after its end
        buf.push(frame, at=t0 + k * 0.02 + 0.03)
    assert buf.now_ms == 1000
    assert buf.position_at(t0 + 1.03) == pytest.approx(1000, abs=1)
    # then nothing arrives for 300 ms: the timeline still moves on with the clock
    assert buf.position_at(t0 + 1.33) == pytest.approx(1300, abs=1)
    for _ in range(15):  # the held-up frames arrive at once; late frames do not move it back
        buf.push(frame, at=t0 + 1.4)
    assert buf.now_ms == 1300
    assert buf.position_at(t0 + 1.33) == pytest.approx(1300, abs=1)
    assert buf.position_at(t0 + 1.4) == pytest.approx(1370, abs=1)
    assert InputAudio(max_s=1).position_at(t0) is None  # no audio timed yet


def test_input_buffer_cap_drops_oldest() -> None:
    buf = InputAudio(max_s=1)
    for _ in range(100):
        buf.push(tone(0.02))
    assert buf.buffered_ms == pytest.approx(1000, abs=20)
    assert buf.take().size == pytest.approx(RATE, abs=960)
    assert buf.buffered_ms == 0


@pytest.mark.parametrize(
    ("text", "reply"),
    [
        ("Hi there", "Hello! How can I help?"),
        ("what is 12 minus 5?", "12 minus 5 is 7."),
        ("What is three times four", "three times four is 12."),
        ("where is my phone?", "You asked: where is my phone."),
        ("I like trains.", "You said: I like trains."),
    ],
)
def test_brain_replies(text: str, reply: str) -> None:
    assert brain.reply_to_text(text) == reply


def test_brain_tools() -> None:
    tool = {
        "name": "set_timer",
        "parameters": {
            "type": "object",
            "properties": {
                "minutes": {"type": "integer"},
                "label": {"type": "string"},
                "loud": {"type": "boolean"},
            },
            "required": ["minutes", "label"],
        },
    }
    assert brain.pick_tool("please set timer", [tool], "auto") is tool
    assert brain.pick_tool("please set timer", [tool], "none") is None
    assert brain.pick_tool("nothing", [tool], "auto") is None
    assert brain.pick_tool("nothing", [tool], "required") is tool
    args = brain.tool_arguments("set_timer for 5 minutes for pasta, loud yes", tool)
    assert args == '{"minutes":5,"label":"5 minutes","loud":true}'
    assert brain.tool_arguments('set_timer label="eggs" minutes=3', tool) == (
        '{"minutes":3,"label":"eggs","loud":false}'
    )
    assert brain.instructed("Reply briefly. Say 'good morning' to the user.") == "good morning"


def test_word_times_join_back_and_grow() -> None:
    text = "  Hello there, general Kenobi."
    times = word_times(text, 2.0)
    assert "".join(w for w, _ in times) == text
    starts = [t for _, t in times]
    assert starts == sorted(starts) and starts[0] == 0 and starts[-1] < 2.0


def test_tone_voice_is_voiced_with_gaps() -> None:
    pcm = tone_voice("one two three")
    frames = pcm[: pcm.size // 960 * 960].reshape(-1, 960)
    loud = [dbfs(f) > -30 for f in frames]
    assert sum(loud) > 10 and not all(loud)
    assert 0.6 < pcm.size / RATE < 2.0


def test_avatar_mouth_follows_level_and_frames_are_small() -> None:
    levels = [avatar.mouth_level(r) for r in (0.0, 0.003, 0.01, 0.05, 0.2, 1.0)]
    assert levels == sorted(levels) and levels[0] == 0 and levels[-1] == avatar.MOUTH_LEVELS - 1
    for size in (256, 512):
        b64 = avatar.render_frame(size, 8)
        assert len(b64) < 64 * 1024 and avatar.cached_frame(size, 8) == b64


def test_fault_spec_parsing() -> None:
    f = faults.parse({"http_status": 429, "retry_after": 3, "count": 2})
    assert isinstance(f, faults.HttpFault) and f.remaining == 2
    book = faults.FaultBook()
    book.add(f)
    assert book.take("client_secrets") is None
    assert book.take("calls") is f and book.take("calls") is f and book.take("calls") is None
    storm = faults.parse({"call": "event_storm", "rate": 500, "seconds": 2})
    assert isinstance(storm, faults.CallFault) and storm.rate == 500
    for bad in (
        {"call": "event_storm", "rate": 20000, "seconds": 60},
        {"count": 0, "http_status": 500},
        {"call": "oversized_event", "bytes": 10},
    ):
        with pytest.raises(faults.FaultSpecError):
            faults.parse(bad)


def test_keystore() -> None:
    now = [1000.0]
    keys = KeyStore((), clock=lambda: now[0])
    assert keys.check("Bearer anything").ephemeral is None
    eph = keys.mint(60, {"type": "realtime"})
    assert keys.check(f"Bearer {eph.value}").ephemeral == eph
    with pytest.raises(AuthError):
        keys.check(f"Bearer {eph.value}", allow_ephemeral=False)
    now[0] += 61
    with pytest.raises(AuthError, match="expired"):
        keys.check(f"Bearer {eph.value}")
    strict = KeyStore(("a", "b"))
    assert strict.check("bearer b").ephemeral is None
    with pytest.raises(AuthError):
        strict.check("Bearer c")


def test_input_voiced_seconds_count_sound_not_silence() -> None:
    from rtedge.peer.audio_in import RATE, InputAudio

    audio = InputAudio(max_s=10)
    frame = RATE // 50
    for _ in range(50):
        audio.push(np.zeros(frame, dtype=np.int16))  # digital silence: a closed mic
    audio.push(np.full(frame, 20, dtype=np.int16))  # -64 dBFS: below the floor
    assert audio.voiced_samples == 0
    tone = (np.sin(np.arange(frame) / 5) * 3000).astype(np.int16)
    for _ in range(25):
        audio.push(tone)
    assert audio.voiced_samples / RATE == 0.5
