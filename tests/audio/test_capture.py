"""Capture through real ALSA (file plugin, FIFO-paced) into the aiortc mic track."""

from __future__ import annotations

import asyncio
import fractions
import threading
import time
import weakref
from typing import Any

import av
import numpy as np
import pytest

from rtedge.audio.pipeline import AudioPipeline
from rtedge.audio.tracks import MicTrack
from rtedge.media.dsp import rms
from rtedge.settings import AudioSettings
from rtedge.state import State
from tests.audio.alsa_rig import AlsaRig, interleave, sine
from tests.poll import until
from tests.support import TIME_SCALE


def settings(**kw: object) -> AudioSettings:
    base: dict[str, object] = {
        "capture_device": "rtmic",
        "playback_device": "rtspk",
        "reopen_initial_s": 0.1,
        "reopen_max_s": 0.4,
    }
    base.update(kw)
    return AudioSettings.model_validate(base)


# Keyed by the track itself, weakly: an id() is reused once a track is collected, and a later
# test's track then got a decoder still ringing with the earlier test's tone (a busy run's
# "silent" packets decoded to a tail of sound).
_decoders: weakref.WeakKeyDictionary[MicTrack, Any] = weakref.WeakKeyDictionary()


def decoder_for(track: MicTrack) -> Any:
    """A real Opus decoder per track, as the far end has (it keeps state between packets)."""
    if track not in _decoders:
        codec: Any = av.CodecContext.create("opus", "r")
        codec.sample_rate = 48000
        codec.layout = "mono"
        _decoders[track] = codec
    return _decoders[track]


async def collect(track: MicTrack, n: int) -> tuple[list[np.ndarray], list[float]]:
    """``n`` packets from the track, decoded to s16 as the service would hear them."""
    frames, times = [], []
    decoder = decoder_for(track)
    for _ in range(n):
        packet = await track.recv()
        times.append(time.monotonic())
        assert isinstance(packet, av.Packet)  # encoded here, only packetized by aiortc
        assert packet.time_base == fractions.Fraction(1, 48000)
        decoded = decoder.decode(av.Packet(bytes(packet)))
        assert len(decoded) == 1 and decoded[0].samples == 960  # one 20 ms frame per packet
        pcm = decoded[0].to_ndarray().reshape(-1)
        frames.append(np.round(np.clip(pcm, -1.0, 1.0) * 32767.0).astype(np.int16))
    return frames, times


def dominant_hz(x: np.ndarray, rate: int = 48000) -> float:
    spectrum = np.abs(np.fft.rfft(x.astype(np.float64) * np.hanning(x.size)))
    return float(np.argmax(spectrum) * rate / x.size)


async def test_capture_frames_are_paced_and_carry_the_mic(rig: AlsaRig) -> None:
    rig.write_conf()
    feeder, _ = rig.make_mic()
    feeder.play(sine(1000, 5.0, 48000))
    feeder.start()
    state = State()
    pipe = AudioPipeline(settings(), state)
    pipe.talking = True
    await pipe.start()
    track = pipe.mic_track()
    try:
        assert isinstance(track, MicTrack)
        frames, times = await collect(track, 60)
        # skip the first frames (device start-up backlog), then 20 ms apart on average: never
        # faster (paced by the device), and no slower than a CPU of this run keeps up with (an
        # emulated one, RTEDGE_TEST_TIME_SCALE, falls behind under load and catches up later)
        gaps = np.diff(times[10:])
        assert 0.0185 < gaps.mean() < 0.0185 + 0.003 * TIME_SCALE, gaps.mean()
        audio = np.concatenate(frames[10:])
        assert dominant_hz(audio) == pytest.approx(1000, abs=10)
        assert 0.3 < np.sqrt(np.mean((audio / 32768.0) ** 2)) < 0.4  # sine at 0.5 -> RMS 0.354
        assert state.devices["capture"].ok
        await until(lambda: state.mic_level > 0.3)
    finally:
        await pipe.stop()
        feeder.stop()
    assert track.readyState == "ended"


@pytest.mark.parametrize(("rate", "channels"), [(16000, 2), (44100, 2)])
async def test_capture_converts_native_rate_and_channels(
    rig: AlsaRig, rate: int, channels: int
) -> None:
    rig.write_conf()
    feeder, _ = rig.make_mic(rate=rate, channels=channels)
    feeder.play(interleave(sine(440, 5.0, rate), channels))
    feeder.start()
    pipe = AudioPipeline(settings(sample_rate=rate, channels=channels), State())
    pipe.talking = True
    await pipe.start()
    track = pipe.mic_track()
    try:
        assert isinstance(track, MicTrack)
        t0 = time.monotonic()
        frames, _ = await collect(track, 50)
        elapsed = time.monotonic() - t0
        assert 0.8 < elapsed < 0.8 + 0.5 * TIME_SCALE  # 50 frames of 20 ms in real time
        audio = np.concatenate(frames[10:])
        assert dominant_hz(audio) == pytest.approx(440, abs=5)
        assert 0.3 < np.sqrt(np.mean((audio / 32768.0) ** 2)) < 0.4
    finally:
        await pipe.stop()
        feeder.stop()


async def test_gate_sends_exact_silence_when_released(rig: AlsaRig) -> None:
    rig.write_conf()
    feeder, _ = rig.make_mic()
    feeder.play(sine(700, 10.0, 48000))
    feeder.start()
    pipe = AudioPipeline(settings(), State())
    await pipe.start()
    track = pipe.mic_track()
    try:
        assert isinstance(track, MicTrack)
        closed, _ = await collect(track, 15)
        assert all(not f.any() for f in closed)  # digital silence, not just quiet
        pipe.talking = True
        opened, _ = await collect(track, 15)
        # the 700 Hz tone at 0.5 (RMS 0.35), at full level from its first whole period
        assert all(rms(f) > 0.3 for f in opened[2:]), [round(rms(f), 3) for f in opened]
        pipe.talking = False
        closed_again, _ = await collect(track, 15)
        # the encoder was given zeros from the release on: after the frame that held the
        # codec's look-ahead, what the far end hears is the decoder's fading tail, under
        # -60 dBFS and falling, not the tone
        tail = [rms(f) for f in closed_again[2:]]
        assert max(tail) < 1e-3, tail
        assert not closed_again[-1].any()  # and then digital silence again
        pipe.talking = True  # a second press: again at full level at once
        opened_again, _ = await collect(track, 10)
        assert all(rms(f) > 0.3 for f in opened_again[2:]), [round(rms(f), 3) for f in opened_again]
    finally:
        await pipe.stop()
        feeder.stop()


async def test_hands_free_sends_the_mic_without_a_press(rig: AlsaRig) -> None:
    rig.write_conf()
    feeder, _ = rig.make_mic()
    feeder.play(sine(700, 10.0, 48000))
    feeder.start()
    pipe = AudioPipeline(settings(), State(), hands_free=True)
    await pipe.start()
    track = pipe.mic_track()
    try:
        assert isinstance(track, MicTrack)
        frames, _ = await collect(track, 20)
        assert all(f.any() for f in frames[5:])
    finally:
        await pipe.stop()
        feeder.stop()


async def test_missing_mic_sends_silence_on_the_wall_clock_then_recovers(rig: AlsaRig) -> None:
    rig.write_conf()  # no mic directory yet: opening fails with ENOENT
    state = State()
    pipe = AudioPipeline(settings(), state)
    pipe.talking = True
    await pipe.start()
    track = pipe.mic_track()
    feeder = None
    try:
        assert isinstance(track, MicTrack)
        await until(lambda: "capture" in state.devices)
        assert not state.devices["capture"].ok
        assert "No such file" in state.devices["capture"].detail
        assert any("capture unavailable" in p for p in state.problems())
        t0 = time.monotonic()
        frames, _ = await collect(track, 25)
        elapsed = time.monotonic() - t0
        assert 0.4 < elapsed < 0.6  # RTP keeps flowing at 50 frames/s
        loud = {i: int(np.abs(f).max()) for i, f in enumerate(frames) if f.any()}
        assert not loud, loud  # packet index: peak
        feeder, _ = rig.make_mic()
        feeder.play(sine(500, 10.0, 48000))
        feeder.start()
        await until(lambda: state.devices["capture"].ok)
        frames, _ = await collect(track, 30)
        assert any(f.any() for f in frames)
    finally:
        await pipe.stop()
        if feeder:
            feeder.stop()


async def test_mic_that_fails_mid_stream_is_reopened_and_frames_continue(rig: AlsaRig) -> None:
    rig.write_conf(capture_copy=True)
    feeder, drain = rig.make_mic(capture_copy=True)
    assert drain is not None
    feeder.play(sine(600, 30.0, 48000))
    feeder.start()
    state = State()
    pipe = AudioPipeline(settings(), state)
    pipe.talking = True
    await pipe.start()
    track = pipe.mic_track()
    feeder2 = drain2 = None
    try:
        assert isinstance(track, MicTrack)
        frames, _ = await collect(track, 20)
        assert any(f.any() for f in frames[5:])
        opens = pipe.capture.opens
        # unplug: the device directory disappears and the plugin's writes fail (EIO)
        rig.vanish_mic()
        drain.close()
        t0 = time.monotonic()
        frames, _ = await collect(track, 40)  # the track never stops
        assert time.monotonic() - t0 < 1.2
        assert not state.devices["capture"].ok
        feeder2, drain2 = rig.make_mic(capture_copy=True)
        feeder2.play(sine(900, 30.0, 48000))
        feeder2.start()
        await until(lambda: state.devices["capture"].ok)
        assert pipe.capture.opens == opens + 1
        frames, _ = await collect(track, 30)
        audio = np.concatenate(frames[10:])
        assert dominant_hz(audio) == pytest.approx(900, abs=10)
    finally:
        await pipe.stop()
        feeder.stop()
        for part in (feeder2, drain2):
            if part is not None:
                part.stop() if hasattr(part, "stop") else part.close()


async def test_unread_track_drops_oldest_and_counts(rig: AlsaRig) -> None:
    rig.write_conf()
    feeder, _ = rig.make_mic()
    feeder.start()
    state = State()
    pipe = AudioPipeline(settings(), state)
    await pipe.start()
    track = pipe.mic_track()
    try:
        assert isinstance(track, MicTrack)
        await collect(track, 3)  # the sender started reading...
        # ...then stalls (reads nothing): the queue keeps 5, the older periods are dropped
        await until(lambda: state.queue_drops["mic"] >= 10, 5, "ten periods dropped")
        await collect(track, 5)
    finally:
        await pipe.stop()
        feeder.stop()


async def test_stop_is_bounded_when_the_driver_blocks(rig: AlsaRig) -> None:
    rig.write_conf()
    feeder, _ = rig.make_mic()  # the FIFO has a writer that never writes: reads block
    state = State()
    pipe = AudioPipeline(settings(), state)
    await pipe.start()
    await asyncio.sleep(0.3)
    t0 = time.monotonic()
    await pipe.stop()
    assert time.monotonic() - t0 < 1.3
    feeder.stop()  # closing the writer releases the blocked read; the thread then ends
    await until(lambda: not any(t.name == "rtedge-capture" for t in threading.enumerate()))


async def test_heartbeats_move_and_survive_a_state_snapshot(rig: AlsaRig) -> None:
    """Regression: the heartbeats end up referenced from State listeners, which
    State.snapshot() deep-copies; bound methods of the workers (which hold locks) broke it."""
    import copy

    rig.write_conf()
    pipe = AudioPipeline(settings(capture_device="rtbad", playback_device="rtbad"), State())
    beats = pipe.heartbeats()
    copy.deepcopy(beats)
    await pipe.start()
    try:
        first = {name: beat() for name, beat in beats.items()}
        # both devices missing: the retry loops still beat
        await until(lambda: all(beats[n]() > first[n] for n in beats), 5, "both beats moved")
    finally:
        await pipe.stop()
