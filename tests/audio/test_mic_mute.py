"""A muted mic track (a call prepared ahead for make-before-break) carries digital silence while
push-to-talk is held; unmuted, the next packet is the microphone's."""

from __future__ import annotations

from rtedge.audio.tracks import MicTrack

SILENCE = b"\xf8\xff\xfe"


def make() -> MicTrack:
    return MicTrack(
        silence=SILENCE, capture_live=lambda: True, on_drop=lambda n: None, on_stop=lambda t: None
    )


async def test_muted_track_sends_silence_and_unmutes() -> None:
    track = make()
    first = await track.recv()  # the sender started reading (a synthetic silent packet)
    assert bytes(first) == SILENCE
    track.muted = True
    track.push(b"voice-1", True)
    packet = await track.recv()
    assert bytes(packet) == SILENCE and track.frames_live == 0
    track.muted = False
    track.push(b"voice-2", True)
    packet = await track.recv()
    assert bytes(packet) == b"voice-2" and track.frames_live == 1
    track.stop()
