"""The microphone's Opus encoder: one 20 ms mono period in, one Opus packet out.

aiortc would encode the mic itself: it upmixes every frame to stereo, encodes stereo at
96 kb/s, and hops to an executor thread and back for each frame. A microphone is mono, and the
capture thread is already off the event loop, so rtedge encodes there (PyAV's libopus) and the
mic track hands aiortc finished packets, which its sender only packetizes.
"""

from __future__ import annotations

from typing import Any

import av
import numpy as np

from rtedge.media.dsp import FRAME_SAMPLES, TIME_BASE, WEBRTC_RATE, Int16Array


class MicEncoder:
    """Stateful (Opus predicts from the previous frames), used from one thread.

    A new encoder has already taken one period of zeros, so its state is the one silence
    leaves: a far end that has been decoding ``silence_packet()``s then hears the first word at
    full level. (A never-used encoder, or one whose last input was speech, makes the decoder
    ramp up over about 100 ms.) So the pipeline starts every press on a new encoder.
    """

    def __init__(self, bitrate: int, complexity: int = 5) -> None:
        self.bitrate = bitrate
        self.complexity = complexity
        codec: Any = av.CodecContext.create("libopus", "w")
        codec.sample_rate = WEBRTC_RATE
        codec.layout = "mono"
        codec.format = "s16"
        codec.bit_rate = bitrate
        codec.time_base = TIME_BASE
        codec.options = {"compression_level": str(complexity)}  # FFmpeg's name for it
        codec.open()
        self._codec = codec
        self._pts = 0
        self.encode(np.zeros(FRAME_SAMPLES, dtype=np.int16))

    def encode(self, samples: Int16Array) -> bytes:
        """One period of exactly ``FRAME_SAMPLES`` mono s16 samples -> one Opus packet."""
        if samples.size != FRAME_SAMPLES:
            raise ValueError(f"an Opus packet takes {FRAME_SAMPLES} samples, got {samples.size}")
        # filled in place rather than with from_ndarray, whose checks and reshapes cost more
        # than the copy on a thread that wakes with cold caches every period
        frame = av.AudioFrame(format="s16", layout="mono", samples=FRAME_SAMPLES)
        frame.planes[0].update(samples.tobytes())
        frame.sample_rate = WEBRTC_RATE
        frame.pts = self._pts
        frame.time_base = TIME_BASE
        self._pts += FRAME_SAMPLES
        # libopus returns this frame's packet at once (its look-ahead is inside the packet,
        # not a held frame); empty only if it ever held one back
        packets = self._codec.encode(frame)
        return bytes(packets[0]) if packets else b""


def silence_packet(bitrate: int, complexity: int = 5) -> bytes:
    """A packet of digital silence, sent while the microphone delivers nothing."""
    encoder = MicEncoder(bitrate, complexity)
    zeros = np.zeros(FRAME_SAMPLES, dtype=np.int16)
    packet = b""
    for _ in range(2):  # past the encoder's start-up: the steady silent packet
        packet = encoder.encode(zeros)
    return packet


__all__ = ["FRAME_SAMPLES", "TIME_BASE", "MicEncoder", "silence_packet"]
