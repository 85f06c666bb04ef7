"""A low-latency receive buffer for the call's incoming Opus audio, in place of aiortc's.

aiortc's receiver gives audio a ``JitterBuffer(capacity=16, prefetch=4)``: a frame is handed to
the decoder only when the four packets after it have arrived, so every frame waits 80 ms. That
wait smooths nothing (frames still leave one per arriving packet, as bursty as they came); it
only tolerates reordering. And one lost packet stalls the buffer until 16 packets are queued,
after which it stays 14 packets (280 ms) deep for the rest of the call (aiortc issue #543).

Our playout buffer (``PlaybackWorker``) is what absorbs jitter, paced by the speaker's clock, so
this buffer only has to put packets in order: a packet that is next in sequence is released at
once; a missing one is waited for while at most ``reorder_packets`` newer packets are held, then
skipped. aiortc's receiver decodes one frame per arriving packet, so when several packets become
ready together (a late packet filling a hole, or a hole given up), they are released as one Opus
packet of several frames (RFC 6716 section 3.2.5, "code 3"), and no backlog remains.

aiortc has no public setting for this. ``install`` swaps the buffer of one ``RTCRtpReceiver``
(ours, before negotiation) through its private attribute, after checking it is what we expect;
anything else leaves aiortc's own buffer in place with a warning. site-packages is not touched.
"""

from __future__ import annotations

import logging
from typing import Any

from aiortc.jitterbuffer import JitterBuffer, JitterFrame
from aiortc.rtp import RtpPacket

log = logging.getLogger(__name__)

#: A sequence jump larger than this (forward or back) is a new stream, not loss or reordering.
MAX_JUMP = 100
#: Longest audio released as one packet (the Opus limit).
MAX_MERGED_SAMPLES = 5760  # 120 ms at 48 kHz
#: aiortc's name-mangled attribute holding a receiver's jitter buffer (aiortc 1.x).
_ATTR = "_RTCRtpReceiver__jitter_buffer"
_KIND_ATTR = "_RTCRtpReceiver__kind"


def opus_frame_samples(toc: int) -> int:
    """Samples (at 48 kHz) of one frame of an Opus packet with this TOC byte (RFC 6716 3.1)."""
    config = toc >> 3
    if config < 12:  # SILK: 10, 20, 40, 60 ms
        return (480, 960, 1920, 2880)[config & 3]
    if config < 16:  # hybrid: 10, 20 ms
        return (480, 960)[config & 1]
    return (120, 240, 480, 960)[config & 3]  # CELT: 2.5, 5, 10, 20 ms


def _length_bytes(n: int) -> bytes:
    if n < 252:
        return bytes((n,))
    first = 252 + ((n - 252) & 3)
    return bytes((first, (n - first) // 4))


def merge_opus(payloads: list[bytes]) -> bytes | None:
    """Single-frame Opus packets of one configuration joined into one multi-frame packet (code 3,
    VBR), or None when they cannot be (other codes, mixed configurations, over 120 ms)."""
    if not payloads:
        return None
    if len(payloads) == 1:
        return payloads[0]
    toc = payloads[0][0] if payloads[0] else -1
    if toc < 0 or toc & 3 != 0:
        return None
    for p in payloads:
        if not p or p[0] != toc or len(p) - 1 > 1275:
            return None
    if len(payloads) * opus_frame_samples(toc) > MAX_MERGED_SAMPLES:
        return None
    out = bytearray((toc | 3, 0x80 | len(payloads)))  # code 3, VBR, no padding, M frames
    for p in payloads[:-1]:
        out += _length_bytes(len(p) - 1)
    for p in payloads:
        out += p[1:]
    return bytes(out)


def _ahead(seq: int, ref: int) -> int:
    """How far ``seq`` is after ``ref`` in 16-bit sequence space (negative: before)."""
    d = (seq - ref) & 0xFFFF
    return d - 0x10000 if d >= 0x8000 else d


class AudioJitterBuffer(JitterBuffer):
    """In-order release with a short reorder window; see the module docstring.

    Same contract as aiortc's ``JitterBuffer.add``: ``(pli_flag, frame or None)`` per packet.
    """

    def __init__(self, reorder_packets: int = 1, capacity: int = 16) -> None:
        super().__init__(capacity=capacity, prefetch=0)
        self.reorder_packets = reorder_packets
        self._next: int | None = None  # sequence number released next
        self._held: dict[int, RtpPacket] = {}
        self.released = 0
        self.skipped = 0  # packets given up as lost
        self.late = 0  # packets that came after their slot was given up (dropped)
        self.merged = 0  # releases that carried more than one packet

    def add(self, packet: RtpPacket) -> tuple[bool, JitterFrame | None]:
        seq = packet.sequence_number
        if self._next is None:
            self._next = seq
        ahead = _ahead(seq, self._next)
        if ahead < 0 or seq in self._held:
            if -ahead < MAX_JUMP:
                self.late += 1
                return False, None  # a duplicate, or too late: its slot is gone
            self._restart(seq)  # far behind: the sender started over
        elif ahead >= MAX_JUMP:
            self._restart(seq)  # a long outage: start from here
        self._held[seq] = packet
        if self._next not in self._held and len(self._held) > self.reorder_packets:
            # give up on the hole(s): continue from the oldest packet held
            first = min(self._held, key=lambda s: _ahead(s, self._next or 0))
            self.skipped += _ahead(first, self._next)
            self._next = first
        return False, self._release()

    def _restart(self, seq: int) -> None:
        self._held.clear()
        self._next = seq

    def _release(self) -> JitterFrame | None:
        assert self._next is not None
        ready: list[RtpPacket] = []
        seq = self._next
        while seq in self._held:
            ready.append(self._held[seq])
            seq = (seq + 1) & 0xFFFF
        if not ready:
            return None
        data = [bytes(getattr(p, "_data", b"")) for p in ready]
        # as many as merge into one packet (usually all of them: same encoder settings)
        take = len(ready)
        merged = merge_opus(data)
        while merged is None and take > 1:
            take -= 1
            merged = merge_opus(data[:take])
        for p in ready[:take]:
            del self._held[p.sequence_number]
        self._next = (ready[take - 1].sequence_number + 1) & 0xFFFF
        self.released += take
        if take > 1:
            self.merged += 1
        return JitterFrame(data=merged or b"", timestamp=ready[0].timestamp)


def install(receiver: Any, buffer: JitterBuffer) -> bool:
    """Give one aiortc audio ``RTCRtpReceiver`` our buffer; True when it took. Call before the
    receiver starts (before ``setRemoteDescription``)."""
    current = getattr(receiver, _ATTR, None)
    kind = getattr(receiver, _KIND_ATTR, None)
    if kind != "audio" or not isinstance(current, JitterBuffer):
        log.warning(
            "this aiortc's receiver has no audio jitter buffer where expected; "
            "keeping aiortc's own (80 ms more latency)"
        )
        return False
    setattr(receiver, _ATTR, buffer)
    return True


__all__ = ["AudioJitterBuffer", "install", "merge_opus", "opus_frame_samples"]
