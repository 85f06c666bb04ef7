"""RGB pictures to JPEG and back with PyAV, and the frame header read without decoding."""

from __future__ import annotations

import numpy as np
import pytest

from rtedge.media.jpeg import BadFrame, JpegDecoder, JpegEncoder, jpeg_size, rgb_frame


def test_encode_then_decode_keeps_size_and_colours() -> None:
    rgb = np.zeros((96, 160, 3), np.uint8)
    rgb[:, :80] = (200, 30, 30)
    rgb[:, 80:] = (30, 30, 200)
    data = JpegEncoder(quality=5).encode(rgb_frame(rgb))
    assert data[:2] == b"\xff\xd8" and jpeg_size(data) == (160, 96)
    back = JpegDecoder().decode(data).to_ndarray(format="rgb24")
    assert back.shape == rgb.shape
    assert np.abs(back[48, 20].astype(int) - (200, 30, 30)).max() < 12
    assert np.abs(back[48, 140].astype(int) - (30, 30, 200)).max() < 12


def test_an_odd_sized_picture_is_encoded_at_the_even_size_below() -> None:
    data = JpegEncoder().encode(rgb_frame(np.full((33, 51, 3), 128, np.uint8)))
    assert jpeg_size(data) == (50, 32)


def test_garbage_is_a_bad_frame_for_both_readers() -> None:
    with pytest.raises(BadFrame):
        jpeg_size(b"\xff\xd8\x00\x00garbage")
    with pytest.raises(BadFrame):
        JpegDecoder().decode(b"\xff\xd8\xff\xd9")
