"""Playback through real ALSA (file plugin): a remote track's audio must reach the speaker
file; flush, volume, levels, earcons, missing and vanishing speakers."""

from __future__ import annotations

import asyncio
import contextlib
import fractions
import time

import av
import numpy as np
import pytest
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from rtedge.audio.pipeline import AudioPipeline
from rtedge.settings import AudioSettings
from rtedge.state import State
from tests.audio.alsa_rig import AlsaRig, sine
from tests.poll import until

RATE = 48000
PERIOD = 960


def settings(**kw: object) -> AudioSettings:
    base: dict[str, object] = {
        "capture_device": "rtbad",  # no microphone needed here
        "playback_device": "rtspk",
        "reopen_initial_s": 0.1,
        "reopen_max_s": 0.4,
        "earcons": False,
    }
    base.update(kw)
    return AudioSettings.model_validate(base)


def chirp(seconds: float, amplitude: float = 0.3) -> np.ndarray:
    t = np.arange(int(seconds * RATE)) / RATE
    f0, f1 = 200.0, 2000.0
    phase = 2 * np.pi * (f0 * t + (f1 - f0) * t * t / (2 * seconds))
    # a cosine: it starts at its peak, not on a zero that the silence before it would absorb
    return (np.cos(phase) * amplitude * 32767).astype(np.int16)


class RemoteTrack(MediaStreamTrack):
    """Stands in for aiortc's remote audio track: s16 stereo 48 kHz frames of 960 samples,
    delivered in real time (or all at once with ``paced=False``), then the track ends."""

    kind = "audio"

    def __init__(self, mono: np.ndarray, *, paced: bool = True) -> None:
        super().__init__()
        self.mono = mono
        self.paced = paced
        self.pos = 0
        self.frames_out = 0
        self._next: float | None = None

    def feed(self, mono: np.ndarray) -> None:
        self.mono = np.concatenate((self.mono[self.pos :], mono))
        self.pos = 0

    async def recv(self) -> av.AudioFrame:
        if self.pos >= self.mono.size:
            self.stop()
            raise MediaStreamError
        if self.paced:
            now = time.monotonic()
            self._next = now if self._next is None else self._next + PERIOD / RATE
            await asyncio.sleep(max(0.0, self._next - now))
        chunk = self.mono[self.pos : self.pos + PERIOD]
        chunk = np.pad(chunk, (0, PERIOD - chunk.size))
        self.pos += PERIOD
        frame = av.AudioFrame.from_ndarray(
            np.repeat(chunk, 2).reshape(1, -1), format="s16", layout="stereo"
        )
        frame.sample_rate = RATE
        frame.pts = self.frames_out * PERIOD
        frame.time_base = fractions.Fraction(1, RATE)
        self.frames_out += 1
        return frame


def best_match(haystack: np.ndarray, needle: np.ndarray) -> tuple[int, float]:
    """Offset of ``needle`` in ``haystack`` by cross-correlation, and the correlation
    coefficient there."""
    h = haystack.astype(np.float64)
    n = needle.astype(np.float64)
    size = 1 << int(np.ceil(np.log2(h.size + n.size)))
    corr = np.fft.irfft(np.fft.rfft(h, size) * np.conj(np.fft.rfft(n, size)), size)[: h.size]
    lag = int(np.argmax(corr))
    seg = h[lag : lag + n.size]
    if seg.size < n.size:
        return lag, 0.0
    coef = float(np.dot(seg, n) / (np.linalg.norm(seg) * np.linalg.norm(n) + 1e-9))
    return lag, coef


def in_order_pieces(played: np.ndarray, reference: np.ndarray) -> list[tuple[int, int]]:
    """``played`` as exact slices of ``reference`` taken in order: ``(start, length)`` in the
    reference for each; fails naming the first sample that is in no such slice."""
    pieces: list[tuple[int, int]] = []
    ref_bytes = reference.tobytes()
    i = j = 0
    while i < played.size:
        probe = played[i : i + 32].tobytes()
        found = ref_bytes.find(probe, j * 2)
        while found >= 0 and found % 2:  # a sample boundary, not the middle of one
            found = ref_bytes.find(probe, found + 1)
        assert found >= 0, f"played sample {i} is not the track's next audio"
        j = found // 2
        n = min(played.size - i, reference.size - j)
        same = played[i : i + n] == reference[j : j + n]
        length = n if same.all() else int(np.argmin(same))
        pieces.append((j, length))
        i += length
        j += length
    return pieces


def left(samples: np.ndarray) -> np.ndarray:
    return samples.reshape(-1, 2)[:, 0]


def sound(samples: np.ndarray) -> np.ndarray:
    """Left channel, less the digital silence the worker plays when the buffer has nothing
    ready (``without_zero_runs``). The tracks here are paced by this test's event loop, which
    under CPU load wakes late now and then, and the late frame then plays a period later (as a
    remote stream that comes late does). The rest is what the track sent, in order."""
    return without_zero_runs(left(samples))


def without_zero_runs(x: np.ndarray, min_run: int = 8) -> np.ndarray:
    """``x`` less every run of at least ``min_run`` zero samples: whole periods of silence, or
    the rest of one when the buffer ran dry mid-period (the tones here cross zero in at most
    two samples)."""
    edges = np.flatnonzero(np.diff(np.concatenate(([0], (x == 0).astype(np.int8), [0]))))
    keep = np.ones(x.size, dtype=bool)
    for start, end in zip(edges[::2], edges[1::2], strict=True):
        if end - start >= min_run:
            keep[start:end] = False
    return x[keep]


def rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean((x.astype(np.float64) / 32768.0) ** 2))) if x.size else 0.0


async def drained(pipe: AudioPipeline) -> None:
    """Until the speaker has everything queued for it (rather than a fixed time: under load the
    worker runs late): the buffer is empty, then the worker takes a period and finds nothing,
    so what it took before is written."""
    await until(lambda: pipe.playback.buffered_frames() == 0)
    mark = pipe.playback.silence_periods
    await until(lambda: pipe.playback.silence_periods > mark)


async def started(rig: AlsaRig, **kw: object) -> tuple[AudioPipeline, State]:
    state = State()
    pipe = AudioPipeline(settings(**kw), state)
    await pipe.start()
    await until(lambda: state.devices.get("playback") is not None)
    return pipe, state


@pytest.mark.media
async def test_remote_audio_reaches_the_speaker_in_real_time(rig: AlsaRig) -> None:
    rig.write_conf()
    rig.make_speaker()
    pipe, state = await started(rig)
    assert state.devices["playback"].ok
    sent = np.concatenate((np.zeros(RATE // 5, np.int16), chirp(1.0)))
    track = RemoteTrack(sent)
    t0 = time.monotonic()
    await asyncio.wait_for(pipe.play(track), 5)
    assert time.monotonic() - t0 == pytest.approx(1.2, abs=0.15)  # drained at the track's pace
    await drained(pipe)
    await pipe.stop()
    out = rig.speaker_samples().reshape(-1, 2)
    assert np.array_equal(out[:, 0], out[:, 1])  # mono remote audio on both speaker channels
    played = sound(out.reshape(-1))
    # Bit for bit the track's samples, in order. A burst later than the playout buffer's
    # allowance loses its oldest audio by design (latency stays bounded; a machine busy beside
    # the test can hold this loop up that long): every sample lost must be one the pipeline
    # counted, and a listener would hear a tenth of a second at most.
    reference = without_zero_runs(sent)  # the chirp, as sound() leaves it
    pieces = in_order_pieces(played, reference)
    lost = reference.size - played.size
    assert lost == pipe.playback.frames_dropped, (lost, pipe.playback.frames_dropped)
    assert lost <= RATE // 10 and len(pieces) <= 3, (lost, pieces)
    assert (state.queue_drops["playback"] > 0) == (lost > 0), state.queue_drops
    # the device ran at real time: about as many frames as wall-clock seconds it was open
    assert out.shape[0] / RATE == pytest.approx(time.monotonic() - t0, abs=0.3)


async def test_software_volume(rig: AlsaRig) -> None:
    rig.write_conf()
    rig.make_speaker()
    pipe, _ = await started(rig, volume=0.5)
    reference = chirp(0.6)
    await asyncio.wait_for(pipe.play(RemoteTrack(reference)), 5)
    await drained(pipe)
    await pipe.stop()
    out = sound(rig.speaker_samples())
    lag, coef = best_match(out, reference)
    assert coef > 0.99
    assert rms(out[lag : lag + reference.size]) == pytest.approx(0.5 * rms(reference), rel=0.02)


@pytest.mark.parametrize("held_up", [False, True])
async def test_flush_silences_the_speaker_within_one_period(rig: AlsaRig, held_up: bool) -> None:
    rig.write_conf()
    rig.make_speaker()
    pipe, _ = await started(rig)
    # the reply goes on for 0.25 s after the press (in flight when the service cancels), then
    # the stream is quiet, then the next reply comes
    reply = sine(500, 0.75, RATE, 0.5)
    quiet = np.zeros(RATE // 5, np.int16)
    track = RemoteTrack(np.concatenate((reply, quiet, sine(800, 0.5, RATE, 0.5))))
    player = asyncio.create_task(pipe.play(track))
    await asyncio.sleep(0.5)
    at_flush = round(pipe.played_seconds() * RATE) - pipe.playback.device_origin
    pipe.flush()
    if held_up:
        # the loop is held up right after the press (a busy moment, CPU load): the audio in
        # flight then arrives late and all at once, which is no sign the stream went quiet
        time.sleep(0.1)  # noqa: ASYNC251 (holding the loop up is the point)
    await asyncio.wait_for(player, 5)
    await drained(pipe)
    await pipe.stop()
    out = left(rig.speaker_samples())
    # it was loud before the press (judged a little before it: on a loaded machine the played
    # position read at the press can run a period or two ahead of the samples in the file)
    assert rms(out[at_flush - 8 * PERIOD : at_flush - 4 * PERIOD]) > 0.3
    # then nothing at all one period later, until the next reply (0.45 s of stream after the
    # press; the window stops 0.15 s short of it, as the position read at the press can be off by
    # a few periods on a loaded machine: seen, the next reply's first 10 ms inside a 0.4 s window)
    cut = out[at_flush + PERIOD : at_flush + int(0.3 * RATE)]
    assert cut.size > 0 and not cut.any()
    tail = out[at_flush + int(0.4 * RATE) :]
    assert rms(tail) > 0.1  # the next reply plays again


async def test_bounded_buffer_drops_oldest_and_counts(rig: AlsaRig) -> None:
    rig.write_conf()
    rig.make_speaker()
    pipe, state = await started(rig)
    burst = RemoteTrack(sine(300, 1.0, RATE, 0.5), paced=False)  # 1 s arrives at once
    t0 = time.monotonic()
    await asyncio.wait_for(pipe.play(burst), 5)
    pushing = time.monotonic() - t0
    await drained(pipe)
    await pipe.stop()
    assert state.queue_drops["playback"] >= 40
    out = left(rig.speaker_samples())
    loud = np.flatnonzero(np.abs(out) > 1000)
    # at most our buffer's capacity and the device's periods were played, and what the
    # worker took meanwhile: a period per period the burst took to arrive (long under load),
    # and one more where its wake-up fell inside
    params = pipe.playback.params
    most = pipe.playback.capacity_frames + params.periods * params.period_frames
    period_s = params.period_frames / RATE
    meanwhile = (int(pushing / period_s) + 1) * period_s
    assert loud.size and (loud[-1] - loud[0]) / RATE <= most / RATE + meanwhile + 0.005


async def test_full_buffer_sheds_silence_before_sound(rig: AlsaRig) -> None:
    rig.write_conf()
    rig.make_speaker()
    pipe, state = await started(rig)
    # the end of a reply and then a second of the stream's silence, all at once (as after a
    # stall): the silence overflows the buffer, but what goes is silence, not the reply
    tail = sine(300, 0.04, RATE, 0.5)
    await asyncio.wait_for(
        pipe.play(RemoteTrack(np.concatenate((tail, np.zeros(RATE, np.int16))), paced=False)), 5
    )
    await drained(pipe)
    await pipe.stop()
    assert state.queue_drops["playback"] == 0
    # shed from the full buffer, or not queued at all once the pause ran long
    # (the worker plays some meanwhile)
    assert pipe.playback.frames_shed + pipe.playback.frames_skipped >= RATE // 2
    out = left(rig.speaker_samples())
    lag, coef = best_match(out, tail)
    assert coef > 0.99  # the whole tail was played
    assert rms(out[lag : lag + tail.size]) == pytest.approx(rms(tail), rel=0.01)


async def test_levels_and_speech_onset_follow_the_playback_position(rig: AlsaRig) -> None:
    rig.write_conf()
    rig.make_speaker()
    pipe, state = await started(rig)
    track = RemoteTrack(np.concatenate((np.zeros(RATE // 2, np.int16), sine(440, 1.0, RATE, 0.5))))
    player = asyncio.create_task(pipe.play(track))
    try:
        await asyncio.sleep(0.3)
        assert pipe.speech_onset() is None
        assert pipe.speaker_level() == 0.0
        await until(lambda: pipe.speech_onset() is not None, within=1.0)
        onset = pipe.speech_onset()
        assert onset is not None
        assert onset <= pipe.played_seconds()
        gaps = pipe.playback.silence_periods
        await asyncio.sleep(0.3)
        later = pipe.speech_onset()
        if pipe.playback.silence_periods == gaps:
            assert later == onset  # the run goes on
        else:
            # this loop, which paces the track, was held up (a busy machine): the speaker
            # really played a gap, and the run after it begins after it
            assert later is None or onset < later <= pipe.played_seconds(), (onset, later)
        await until(lambda: abs(pipe.speaker_level() - 0.354) <= 0.01, within=1.0)
        await until(lambda: state.speaker_level > 0.3, within=1.0)
        clock = [pipe.played_seconds() for _ in range(3)]
        assert clock == sorted(clock)
        await asyncio.wait_for(player, 5)
        await until(lambda: pipe.speech_onset() is None, within=1.0)
    finally:
        player.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await player
        await pipe.stop()


@pytest.mark.parametrize("enabled", [True, False])
async def test_earcons_play_locally_only_when_enabled(rig: AlsaRig, enabled: bool) -> None:
    rig.write_conf()
    rig.make_speaker()
    pipe, _ = await started(rig, earcons=enabled)
    await asyncio.sleep(0.1)
    pipe.earcon("press")
    await asyncio.sleep(0.3)
    assert pipe.speaker_level() == 0.0  # the avatar does not lip-sync to earcons
    await pipe.stop()
    out = left(rig.speaker_samples())
    if not enabled:
        assert not out.any()
        return
    loud = np.flatnonzero(np.abs(out) > 500)
    assert loud.size
    tone = out[loud[0] : loud[-1]]
    assert tone.size / RATE == pytest.approx(0.12, abs=0.01)
    half = tone.size // 2
    spectrum = [np.abs(np.fft.rfft(part)) for part in (tone[:half], tone[half:])]
    peaks = [np.argmax(s) * RATE / (2 * (s.size - 1)) for s in spectrum]
    assert peaks[0] == pytest.approx(880, abs=30)  # press: rising
    assert peaks[1] == pytest.approx(1320, abs=30)


async def test_missing_speaker_still_drains_then_recovers(rig: AlsaRig) -> None:
    rig.write_conf()  # no speaker directory: opening fails
    state = State()
    pipe = AudioPipeline(settings(), state)
    await pipe.start()
    try:
        await until(lambda: "playback" in state.devices)
        assert not state.devices["playback"].ok
        assert any("playback unavailable" in p for p in state.problems())
        track = RemoteTrack(sine(440, 3.0, RATE, 0.3))
        player = asyncio.create_task(pipe.play(track))
        t0, c0 = time.monotonic(), pipe.played_seconds()
        await asyncio.sleep(0.5)
        assert track.frames_out == pytest.approx(25, abs=3)  # drained in real time
        assert pipe.played_seconds() - c0 == pytest.approx(time.monotonic() - t0, abs=0.1)
        rig.make_speaker()
        await until(lambda: state.devices["playback"].ok)
        await asyncio.wait_for(player, 5)
    finally:
        await pipe.stop()
    out = left(rig.speaker_samples())
    assert rms(out) > 0.05


async def test_missing_speaker_clock_keeps_wall_time_across_retries(rig: AlsaRig) -> None:
    rig.write_conf()  # no speaker directory: every open attempt fails (after parsing the config)
    state = State()
    pipe = AudioPipeline(settings(reopen_initial_s=0.02, reopen_max_s=0.02), state)
    await pipe.start()
    try:
        await until(lambda: "playback" in state.devices)
        samples = []
        for _ in range(100):  # 2 s
            samples.append((time.monotonic(), pipe.played_seconds()))
            await asyncio.sleep(PERIOD / RATE)
        assert pipe.playback.failures >= 40  # it did retry all along
        # the virtual sink's clock runs at wall-clock pace. It moves in steps (a period, or
        # the periods an open attempt took, at once after it), so compare the rates.
        wall, clock = np.array(samples).T
        rate = np.polyfit(wall, clock, 1)[0]
        assert rate == pytest.approx(1.0, abs=0.03)
    finally:
        await pipe.stop()


async def test_speaker_that_fails_mid_stream_is_reopened(rig: AlsaRig) -> None:
    rig.write_conf(speaker_fifo=True)
    drain = rig.make_speaker(fifo=True)
    assert drain is not None
    state = State()
    pipe = AudioPipeline(settings(), state)
    await pipe.start()
    drain2 = None
    try:
        track = RemoteTrack(sine(440, 30.0, RATE, 0.3))
        player = asyncio.create_task(pipe.play(track))
        await until(lambda: len(drain.data) > RATE * 4 // 2)  # half a second arrived
        rig.vanish_speaker()
        drain.close()
        # the entry may appear only once the failure reaches the loop
        await until(lambda: "playback" in state.devices and not state.devices["playback"].ok)
        frames = track.frames_out
        await asyncio.sleep(0.4)
        assert track.frames_out - frames >= 15  # still drained
        assert not player.done()
        drain2 = rig.make_speaker(fifo=True)
        assert drain2 is not None
        await until(lambda: state.devices["playback"].ok)
        reopened = drain2

        def heard() -> np.ndarray:
            data = bytes(reopened.data)
            return sound(np.frombuffer(data[: len(data) // 4 * 4], dtype=np.int16))

        # the reopened speaker plays the track again, at its level. How much of what it plays
        # is the track depends on this test's event loop, which paces the track: on a busy
        # machine it wakes late, the speaker plays digital silence meanwhile, and a burst beyond
        # the buffer's bound is cut (by design; seen: 0.18 s of track in 0.57 s with two busy
        # loops beside the suite). So: a quarter second of the track heard, at its level.
        await until(lambda: heard().size >= RATE // 4, 10, "a quarter second of the track")
        assert rms(heard()) == pytest.approx(0.3 / np.sqrt(2), rel=0.05)
        player.cancel()
    finally:
        t0 = time.monotonic()
        await pipe.stop()
        assert time.monotonic() - t0 < 1.5
        if drain2 is not None:
            drain2.close()


def test_long_silence_is_not_queued_beyond_the_target_depth() -> None:
    """Between replies the buffer comes back to its target depth, however deep a stall had made
    it; pauses inside speech keep their length."""
    from rtedge.audio.alsa import PcmParams
    from rtedge.audio.playback import SKIP_SILENCE_AFTER_S, PlaybackWorker

    period = 480
    worker = PlaybackWorker(
        PcmParams("rtspk", RATE, 2, period, 2),
        latency_frames=PERIOD,
        volume=1.0,
        on_status=lambda ok, detail: None,
        reopen_initial_s=0.1,
        reopen_max_s=0.1,
    )
    worker.capacity_frames = RATE  # room for all of it here
    quiet = np.zeros(PERIOD * 2, np.int16)
    loud = np.repeat(sine(440, PERIOD / RATE, RATE, 0.5), 2)
    short_pause = int(SKIP_SILENCE_AFTER_S * RATE) // PERIOD
    worker.push(loud)
    for _ in range(short_pause):  # a pause inside speech: all of it queued
        worker.push(quiet)
    assert worker.buffered_frames() == (1 + short_pause) * PERIOD
    assert worker.frames_skipped == 0
    worker.push(quiet)  # longer: a pause between replies, skipped while the target is there
    assert worker.buffered_frames() == (1 + short_pause) * PERIOD
    assert worker.frames_skipped == PERIOD
    while worker.buffered_frames() >= PERIOD:
        worker._take(period)
    worker.push(quiet)  # under the target: silence queued again
    assert worker.buffered_frames() == PERIOD + period
    worker.push(loud)  # sound is always queued, and ends the pause
    worker.push(quiet)
    assert worker.buffered_frames() == 3 * PERIOD + period
    assert worker.frames_dropped == 0


def test_a_dry_buffer_waits_for_its_target_depth_before_playing() -> None:
    from rtedge.audio.alsa import PcmParams
    from rtedge.audio.playback import PlaybackWorker

    period = 480
    worker = PlaybackWorker(
        PcmParams("rtspk", RATE, 2, period, 2),
        latency_frames=2 * PERIOD,
        volume=1.0,
        on_status=lambda ok, detail: None,
        reopen_initial_s=0.1,
        reopen_max_s=0.1,
    )
    loud = np.repeat(sine(440, PERIOD / RATE, RATE, 0.5), 2)
    worker.push(loud)
    speech, level = worker._take(period)
    assert not speech.any() and level == 0.0  # one frame is not the 40 ms target yet
    worker.push(loud)
    speech, level = worker._take(period)
    assert speech.any() and level > 0.3
    for _ in range(3):
        worker._take(period)
    speech, _ = worker._take(period)  # ran dry: silence, and priming again
    assert not speech.any()
    worker.push(loud)
    assert not worker._take(period)[0].any()
    worker.flush()
    worker.push(loud)
    worker.push(loud)
    assert worker._take(period)[0].any()
