"""rtedge's receive buffer for the service's audio: in order at once, holes skipped quickly,
several ready packets released as one Opus packet (decoded by aiortc's own Opus decoder)."""

from __future__ import annotations

import fractions

import av
import numpy as np
from aiortc import RTCConfiguration, RTCPeerConnection
from aiortc.codecs.opus import OpusDecoder, OpusEncoder
from aiortc.jitterbuffer import JitterBuffer, JitterFrame
from aiortc.mediastreams import AudioStreamTrack
from aiortc.rtp import RtpPacket

from rtedge.rtc.jitter import AudioJitterBuffer, install, merge_opus, opus_frame_samples

RATE = 48000
FRAME = 960


def opus_packets(n: int) -> list[bytes]:
    enc = OpusEncoder()
    t = np.arange(FRAME * n) / RATE
    sig = (np.sin(2 * np.pi * 440 * t) * 8000).astype(np.int16)
    out: list[bytes] = []
    for i in range(n):
        f = av.AudioFrame.from_ndarray(
            sig[i * FRAME : (i + 1) * FRAME].reshape(1, -1), format="s16", layout="mono"
        )
        f.sample_rate = RATE
        f.pts = i * FRAME
        f.time_base = fractions.Fraction(1, RATE)
        payloads, _ = enc.encode(f)
        out += payloads
    return out


PACKETS = opus_packets(12)


def packet(seq: int, payload: bytes | None = None) -> RtpPacket:
    p = RtpPacket(payload_type=111, sequence_number=seq & 0xFFFF, timestamp=seq * FRAME)
    p._data = PACKETS[seq % len(PACKETS)] if payload is None else payload  # type: ignore[attr-defined]
    return p


def frames_in(frame: JitterFrame | None) -> int:
    """How many 20 ms frames a released Opus packet holds."""
    if frame is None:
        return 0
    data = frame.data
    return data[1] & 0x3F if data[0] & 3 == 3 else 1


def test_in_order_packets_leave_at_once() -> None:
    jb = AudioJitterBuffer()
    for seq in range(65530, 65536 + 6):  # across the 16-bit wrap
        _, frame = jb.add(packet(seq))
        assert frame is not None and frame.timestamp == seq * FRAME
        assert frames_in(frame) == 1


def test_aiortc_stock_buffer_holds_four_packets_and_grows_after_a_loss() -> None:
    """What we replace (aiortc issue #543): 80 ms always, 280 ms for good after one loss."""
    jb = JitterBuffer(capacity=16, prefetch=4)
    held_after = []
    for seq in range(60):
        if seq == 10:
            continue
        _, frame = jb.add(packet(seq))
        if frame is not None:
            held_after.append(seq - frame.timestamp // FRAME)
    assert held_after[0] == 4 and held_after[-1] == 14


def test_a_lost_packet_is_skipped_after_one_more_and_latency_comes_back() -> None:
    jb = AudioJitterBuffer(reorder_packets=1)
    out: list[tuple[int, int]] = []
    for seq in range(30):
        if seq == 10:
            continue
        _, frame = jb.add(packet(seq))
        if frame is not None:
            out.append((seq, frame.timestamp // FRAME))
    released = dict(out)
    assert 11 not in released  # held: 10 may still come
    assert released[12] == 11  # 10 given up: 11 and 12 leave together
    assert all(released[s] == s for s in range(13, 30))  # and nothing is held after
    assert jb.skipped == 1
    _, late = jb.add(packet(10))
    assert late is None and jb.late == 1


def test_a_reordered_packet_fills_its_hole_and_both_leave_as_one() -> None:
    jb = AudioJitterBuffer(reorder_packets=1)
    assert frames_in(jb.add(packet(0))[1]) == 1
    assert jb.add(packet(2))[1] is None
    _, frame = jb.add(packet(1))
    assert frame is not None and frame.timestamp == 1 * FRAME and frames_in(frame) == 2
    assert frames_in(jb.add(packet(3))[1]) == 1
    assert jb.skipped == 0 and jb.merged == 1


def test_without_a_reorder_window_a_hole_is_skipped_at_once() -> None:
    jb = AudioJitterBuffer(reorder_packets=0)
    jb.add(packet(0))
    _, frame = jb.add(packet(2))
    assert frame is not None and frame.timestamp == 2 * FRAME


def test_a_sender_restart_or_long_outage_starts_over() -> None:
    jb = AudioJitterBuffer()
    jb.add(packet(1000))
    _, frame = jb.add(packet(5000))
    assert frame is not None and frame.timestamp == 5000 * FRAME
    _, frame = jb.add(packet(20))  # far behind: a new stream
    assert frame is not None and frame.timestamp == 20 * FRAME


def test_merged_packets_decode_exactly_like_the_separate_ones() -> None:
    one, many = OpusDecoder(), OpusDecoder()
    separate = np.concatenate(
        [one.decode(JitterFrame(p, 0))[0].to_ndarray().reshape(-1) for p in PACKETS[:6]]
    )
    merged_frames = []
    for group in (PACKETS[0:1], PACKETS[1:3], PACKETS[3:6]):
        data = merge_opus(group)
        assert data is not None
        merged_frames += many.decode(JitterFrame(data, 0))
    merged = np.concatenate([f.to_ndarray().reshape(-1) for f in merged_frames])
    assert [f.samples for f in merged_frames] == [960, 1920, 2880]
    assert np.array_equal(separate, merged)


def test_merge_refuses_what_opus_cannot_carry() -> None:
    p = PACKETS[0]
    assert opus_frame_samples(p[0]) == FRAME
    assert merge_opus([p] * 7) is None  # over 120 ms
    assert merge_opus([p, bytes([p[0] ^ 0x08]) + p[1:]]) is None  # another configuration
    assert merge_opus([p, b""]) is None
    assert merge_opus([bytes([p[0] | 1]) + p[1:], p]) is None  # not single-frame packets


def test_a_packet_that_will_not_merge_leaves_alone_and_the_rest_follow() -> None:
    jb = AudioJitterBuffer(reorder_packets=1)
    jb.add(packet(0))
    jb.add(packet(2))
    _, frame = jb.add(packet(1, payload=bytes([PACKETS[1][0] ^ 0x08]) + PACKETS[1][1:]))
    assert frame is not None and frame.timestamp == 1 * FRAME and frames_in(frame) == 1
    _, frame = jb.add(packet(3))
    assert frame is not None and frame.timestamp == 2 * FRAME and frames_in(frame) == 2


async def test_installs_into_an_aiortc_audio_receiver() -> None:
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    try:
        pc.addTrack(AudioStreamTrack())
        (transceiver,) = pc.getTransceivers()
        ours = AudioJitterBuffer()
        assert install(transceiver.receiver, ours)
        assert transceiver.receiver._RTCRtpReceiver__jitter_buffer is ours
        video = pc.addTransceiver("video", direction="recvonly")
        assert not install(video.receiver, AudioJitterBuffer())
        assert not install(object(), AudioJitterBuffer())
    finally:
        await pc.close()
