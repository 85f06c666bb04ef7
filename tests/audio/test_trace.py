"""The device threads' trace hook (what ``scripts/bench_audio.py --trace`` times the audio path
with), through real ALSA file-plugin devices: each stage sees the sound, in order."""

from __future__ import annotations

import numpy as np

from rtedge.audio.alsa import PcmParams
from rtedge.audio.capture import CaptureWorker
from rtedge.audio.playback import PlaybackWorker
from tests.audio.alsa_rig import AlsaRig, sine
from tests.support import wait_for

RATE = 48000


def test_each_stage_sees_the_sound_in_order(rig: AlsaRig) -> None:
    rig.write_conf()
    rig.make_speaker()
    feeder, _ = rig.make_mic()
    feeder.play(sine(440, 10.0, RATE, 0.5))
    feeder.start()
    first_loud: dict[str, tuple[float, int]] = {}

    def hook(stage: str, samples: np.ndarray, channels: int, t: float) -> None:
        if samples.size and int(np.abs(samples).max()) > 1000:
            first_loud.setdefault(stage, (t, channels))

    def ignore(ok: bool, detail: str) -> None:
        pass

    playback = PlaybackWorker(
        PcmParams("rtspk", RATE, 2, 480, 2),
        latency_frames=960,
        volume=1.0,
        on_status=ignore,
        reopen_initial_s=0.1,
        reopen_max_s=0.4,
    )
    capture = CaptureWorker(
        PcmParams("rtmic", RATE, 1, 960, 4),
        on_period=lambda samples, level: None,
        on_status=ignore,
        out_rate=RATE,
        out_frames=960,
        reopen_initial_s=0.1,
        reopen_max_s=0.4,
    )
    playback.trace = capture.trace = hook
    playback.start()
    capture.start()
    try:
        playback.push(np.repeat(sine(440, 0.2, RATE, 0.5), 2))
        wait_for(lambda: "device.write" in first_loud, 5, "the tone written to the speaker")
        wait_for(lambda: "capture.handed" in first_loud, 5, "the mic's tone handed on")
    finally:
        playback.stop()
        capture.stop()
        feeder.stop()
    assert {stage: ch for stage, (_, ch) in first_loud.items()} == {
        "sink.pushed": 2,
        "playback.take": 2,
        "device.write": 2,
        "capture.read": 1,
        "capture.handed": 1,
    }
    t = {stage: when for stage, (when, _) in first_loud.items()}
    assert t["sink.pushed"] <= t["playback.take"] <= t["device.write"]
    assert t["capture.read"] <= t["capture.handed"]
