"""Conversion, re-chunking, levels and tones (PyAV's real resampler, numpy)."""

from __future__ import annotations

import fractions

import av
import numpy as np
import pytest

from rtedge.media.dsp import (
    Converter,
    Rechunker,
    apply_gain,
    dbfs,
    earcon_samples,
    resample,
    rms,
    tone,
)
from tests.audio.alsa_rig import interleave, sine


def peak_hz(x: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(x.astype(np.float64) * np.hanning(x.size)))
    return float(np.argmax(spectrum) * rate / x.size)


@pytest.mark.parametrize(("rate", "channels"), [(16000, 1), (16000, 2), (44100, 2), (48000, 2)])
def test_converter_to_48k_mono_keeps_pitch_and_level(rate: int, channels: int) -> None:
    conv = Converter(rate, channels, 48000, 1)
    src = interleave(sine(440, 1.0, rate, 0.5), channels)
    period = rate // 50 * channels
    out = np.concatenate([conv.convert(src[i : i + period]) for i in range(0, src.size, period)])
    assert out.size == pytest.approx(48000, abs=200)  # filter delay only
    body = out[2000:-2000]
    assert peak_hz(body, 48000) == pytest.approx(440, abs=2)
    assert rms(body) == pytest.approx(0.5 / np.sqrt(2), rel=0.02)


def test_converter_passthrough_is_untouched() -> None:
    conv = Converter(48000, 1, 48000, 1)
    assert conv.passthrough
    x = sine(1000, 0.02, 48000)
    assert conv.convert(x) is x


def stereo_frame(samples: np.ndarray, rate: int = 48000) -> av.AudioFrame:
    frame = av.AudioFrame.from_ndarray(samples.reshape(1, -1), format="s16", layout="stereo")
    frame.sample_rate = rate
    frame.pts = 0
    frame.time_base = fractions.Fraction(1, rate)
    return frame


def test_frames_already_in_the_speaker_shape_skip_the_resampler() -> None:
    conv = Converter(48000, 2, 48000, 2)
    x = interleave(sine(440, 0.02, 48000), 2)
    frame = stereo_frame(x)
    out = conv.convert_frame(frame)
    assert np.array_equal(out, x)
    assert np.shares_memory(out, np.frombuffer(frame.planes[0], dtype=np.int16))  # no copy
    assert conv._resampler is None


def test_frames_in_another_shape_go_through_the_resampler() -> None:
    conv = Converter(48000, 2, 48000, 2)
    mono = sine(440, 0.1, 48000)
    frame = av.AudioFrame.from_ndarray(mono.reshape(1, -1), format="s16", layout="mono")
    frame.sample_rate = 48000
    out = conv.convert_frame(frame).reshape(-1, 2)
    assert conv._resampler is not None
    assert np.array_equal(out[:, 0], out[:, 1])
    assert rms(out[:, 0]) == pytest.approx(rms(mono) / np.sqrt(2), rel=0.05)  # swr: -3 dB


def test_rechunker_hands_out_exact_periods() -> None:
    r = Rechunker(960, 1)
    sizes = [882, 882, 883, 882, 1000, 10]
    chunks = [c for s in sizes for c in r.push(np.arange(s, dtype=np.int16))]
    assert [c.size for c in chunks] == [960] * (sum(sizes) // 960)


def test_gain_scales_and_saturates() -> None:
    x = np.array([1000, -1000, 30000, -30000], dtype=np.int16)
    assert apply_gain(x, 1.0) is x
    assert apply_gain(x, 0.5).tolist() == [500, -500, 15000, -15000]
    assert apply_gain(x, 2.0).tolist() == [2000, -2000, 32767, -32768]
    assert not apply_gain(x, 0.0).any()


def test_rms_full_scale_square_is_one() -> None:
    assert rms(np.array([-32768, 32767] * 100, dtype=np.int16)) == pytest.approx(1.0, abs=1e-4)
    assert rms(np.zeros(0, dtype=np.int16)) == 0.0


def test_dbfs_of_a_sine_silence_and_nothing() -> None:
    assert dbfs(sine(440, 1.0, 48000, 0.5)) == pytest.approx(-9.03, abs=0.05)  # -6 dB, -3 dB RMS
    assert dbfs(np.zeros(480, np.int16)) == -120.0
    assert dbfs(np.zeros(0, np.int16)) == -120.0


def test_a_whole_clip_resampled_keeps_its_length_pitch_and_tail() -> None:
    src = sine(440, 1.0, 24000, 0.5)
    out = resample(src, 24000, 48000)
    # The filter's tail is flushed: every input sample comes out (two per input sample).
    assert out.size == 2 * src.size
    assert peak_hz(out, 48000) == pytest.approx(440, abs=2)
    assert rms(out) == pytest.approx(rms(src), rel=0.02)
    same = resample(src, 24000, 24000)
    assert np.array_equal(same, src) and same is not src


def test_earcons_are_short_soft_and_distinct() -> None:
    press = earcon_samples("press", rate=48000, channels=2)
    release = earcon_samples("release", rate=48000, channels=2)
    assert press.size == release.size == int(0.12 * 48000) * 2
    assert not np.array_equal(press, release)
    assert np.abs(press).max() < 0.3 * 32768
    assert press[0] == 0 and press[-1] == 0  # faded edges: no click
    with pytest.raises(ValueError):
        earcon_samples("beep", rate=48000, channels=2)
    assert tone([440.0], rate=16000, channels=1).size == int(0.06 * 16000)
