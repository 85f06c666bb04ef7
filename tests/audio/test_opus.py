"""The mic encoder against a real Opus decoder (PyAV's), as the service decodes it."""

from __future__ import annotations

from typing import Any

import av
import numpy as np
import pytest

from rtedge.audio.opus import FRAME_SAMPLES, MicEncoder, silence_packet
from rtedge.media.dsp import rms


def decoder() -> Any:
    codec: Any = av.CodecContext.create("opus", "r")
    codec.sample_rate = 48000
    codec.layout = "mono"
    return codec


def decode(codec: Any, packet: bytes) -> np.ndarray:
    frames = codec.decode(av.Packet(packet))
    assert len(frames) == 1
    pcm = frames[0].to_ndarray().reshape(-1)
    return np.round(np.clip(pcm, -1.0, 1.0) * 32767.0).astype(np.int16)


@pytest.mark.parametrize(("bitrate", "complexity"), [(64_000, 5), (32_000, 0), (128_000, 10)])
def test_each_period_is_one_packet_and_decodes_to_the_same_sound(
    bitrate: int, complexity: int
) -> None:
    enc, dec = MicEncoder(bitrate, complexity), decoder()
    t = np.arange(FRAME_SAMPLES * 50) / 48000
    # a chirp from 200 Hz to 3 kHz: never repeats, so the alignment is unambiguous
    voice = 0.4 * np.sin(2 * np.pi * (200 * t + (2800 / (2 * t[-1])) * t**2)) * 32767
    pcm = voice.astype(np.int16)
    out = []
    for k in range(50):
        packet = enc.encode(pcm[k * FRAME_SAMPLES : (k + 1) * FRAME_SAMPLES])
        assert 0 < len(packet) <= 1275
        assert packet[0] & 0x04 == 0  # the TOC byte's stereo flag: a mono packet
        out.append(decode(dec, packet))
    heard = np.concatenate(out).astype(np.float64)
    sent = pcm.astype(np.float64)
    # the same waveform, later by the codec's look-ahead (well under one period)
    corr = np.correlate(heard[2000:30000], sent[2000:20000], mode="valid")
    lag = int(np.argmax(corr))
    a, b = heard[2000 + lag : 2000 + lag + 18000], sent[2000:20000]
    assert float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b))) > 0.97
    assert 0 < lag < FRAME_SAMPLES, lag


def test_silence_packet_decodes_to_digital_silence() -> None:
    packet = silence_packet(64_000)
    dec = decoder()
    for _ in range(5):
        assert not decode(dec, packet).any()


def test_a_period_of_the_wrong_size_is_refused() -> None:
    enc = MicEncoder(64_000)
    with pytest.raises(ValueError, match="960 samples"):
        enc.encode(np.zeros(480, dtype=np.int16))
    assert rms(np.zeros(4, dtype=np.int16)) == 0.0


def test_after_silence_packets_a_new_encoders_first_word_is_at_full_level() -> None:
    """What a press sounds like at the far end: it has been decoding silence packets, and the
    first periods of speech must not fade in (a never-used libopus encoder makes the decoder
    ramp up over about 100 ms)."""
    dec = decoder()
    for _ in range(20):
        decode(dec, silence_packet(64_000))
    t = np.arange(FRAME_SAMPLES * 4) / 48000
    tone = (0.5 * np.sin(2 * np.pi * 700 * t) * 32767).astype(np.int16)
    enc = MicEncoder(64_000)
    heard = [
        rms(decode(dec, enc.encode(tone[k * FRAME_SAMPLES : (k + 1) * FRAME_SAMPLES])))
        for k in range(4)
    ]
    assert heard[0] > 0.25, heard  # the first period already carries most of its energy
    assert all(h > 0.33 for h in heard[1:]), heard  # then full level (RMS of 0.5 is 0.354)
