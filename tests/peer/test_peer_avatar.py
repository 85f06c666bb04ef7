"""rtAV avatar frames: JPEG deltas at the configured rate during spoken audio, mouth following the
loudness of the audio being sent, ``output_image.done`` with the frame count."""

from __future__ import annotations

import asyncio
import base64
import io
import json
from typing import Any

import av
import numpy as np
import pytest

from rtedge.peer import PeerConfig
from tests.peer.client import Client, silence, tone
from tests.peer.conftest import PeerHandle
from tests.poll import until

RTAV_PTT = {
    "type": "realtime",
    "face": "face_test",
    "modalities": ["audio", "text", "image"],
    "audio": {"input": {"turn_detection": None}},
}


def mouth_dark_pixels(b64: str) -> int:
    """Dark pixels in the lower middle of the face, where a mouth is: decoded for real (PyAV)."""
    container = av.open(io.BytesIO(base64.b64decode(b64)), format="mjpeg")
    frame = next(container.decode(video=0))
    rgb = frame.to_ndarray(format="rgb24")
    container.close()
    h, w = rgb.shape[:2]
    region = rgb[int(h * 0.55) : int(h * 0.85), int(w * 0.3) : int(w * 0.7)]
    return int(np.count_nonzero(region.max(axis=2) < 80))


def frames_of(c: Client, response_id: str) -> list[dict[str, Any]]:
    return [e for e in c.of("response.output_image.delta") if e["response_id"] == response_id]


@pytest.mark.parametrize("peer_config", [PeerConfig(mode="echo")])
async def test_frames_follow_the_loudness_of_the_audio(peer: PeerHandle) -> None:
    c = await peer.connect(session=RTAV_PTT, label="realtime")
    assert c.mic is not None
    await c.request({"type": "input_audio_buffer.clear"}, "input_audio_buffer.cleared")
    c.mic.play(np.concatenate([tone(0.6, 300, 0.5), silence(0.6), tone(0.6, 300, 0.5)]))
    await until(lambda: c.mic is not None and c.mic.queued_s == 0, within=10)
    await asyncio.sleep(0.4)
    await c.request({"type": "input_audio_buffer.commit"}, "input_audio_buffer.committed")
    created = await c.request({"type": "response.create"}, "response.created")
    rid = created["response"]["id"]
    stopped = await c.wait_for("output_audio_buffer.stopped", within=15)
    started = c.of("output_audio_buffer.started")[0]
    done = c.of("response.output_image.done")
    assert len(done) == 1 and done[0]["response_id"] == rid
    frames = frames_of(c, rid)
    assert done[0]["total_frames"] == len(frames)
    types = c.types()
    assert types.index("response.output_image.done") < types.index("output_audio_buffer.stopped")
    # Rate: the configured 25 fps over the time the audio played.
    played = stopped["_t"] - started["_t"]
    assert 22 <= len(frames) / played <= 28, (len(frames), played)
    for f in frames:
        assert len(json.dumps({k: v for k, v in f.items() if k != "_t"})) < 64 * 1024
        assert f["item_id"] == c.of("response.output_item.done")[0]["item"]["id"]
    # Mouth: open during each tone, closed in the gap between them, closed after. Where the gap
    # falls depends on how evenly the client's mic was sent (a loaded machine shifts it), so
    # the runs are found in the series rather than at fixed frame indices.
    mouth = np.array([mouth_dark_pixels(f["delta"]) for f in frames], dtype=float)
    wide = float(np.percentile(mouth, 90))
    is_open = mouth > wide / 2
    runs: list[tuple[bool, int]] = []
    for value in is_open:
        if runs and runs[-1][0] == value:
            runs[-1] = (value, runs[-1][1] + 1)
        else:
            runs.append((bool(value), 1))
    long_runs = [v for v, n in runs if n >= 6]  # 6 frames = 240 ms: a tone or the gap, not jitter
    pattern = [v for i, v in enumerate(long_runs) if i == 0 or v != long_runs[i - 1]]
    assert pattern[pattern.index(True) :][:3] == [True, False, True], (runs, mouth.tolist())
    closed = mouth[~is_open]
    assert wide > 3 * float(np.median(closed)), (wide, mouth.tolist())
    assert not is_open[-1]  # trailing silence: closed again


async def test_cancel_ends_the_frames(peer: PeerHandle) -> None:
    c = await peer.connect(session=RTAV_PTT)
    c.send(
        {
            "type": "conversation.item.create",
            "item": {
                "type": "message",
                "role": "user",
                "content": [
                    {
                        "type": "input_text",
                        "text": "tell me about the sea and the mountains"
                        " and the rivers and the lakes and the forests",
                    }
                ],
            },
        }
    )
    created = await c.request({"type": "response.create"}, "response.created")
    rid = created["response"]["id"]
    await c.wait_for("output_audio_buffer.started")
    await asyncio.sleep(0.5)  # into the reply: the test's input
    mark = len(c.events)
    c.send({"type": "response.cancel"})
    done = await c.wait_for("response.output_image.done", after=mark)
    await c.wait_for("response.done", after=mark)
    n = len(frames_of(c, rid))
    assert done["total_frames"] == n and 8 <= n <= 20
    await asyncio.sleep(0.3)  # a window in which no frame may follow the done
    assert len(frames_of(c, rid)) == n  # no frame after the done


async def test_no_frames_without_image_modality(peer: PeerHandle) -> None:
    c = await peer.connect(
        session={"type": "realtime", "audio": {"input": {"turn_detection": None}}}
    )
    c.send(
        {
            "type": "conversation.item.create",
            "item": {
                "type": "message",
                "role": "user",
                "content": [{"type": "input_text", "text": "hello"}],
            },
        }
    )
    await c.request({"type": "response.create"}, "response.done")
    await c.wait_for("output_audio_buffer.stopped", within=15)
    assert not c.of("response.output_image.delta") and not c.of("response.output_image.done")


@pytest.mark.parametrize("peer_config", [PeerConfig(image_fps=10, image_size=512)])
async def test_rate_and_size_are_configurable(peer: PeerHandle) -> None:
    c = await peer.connect(session=RTAV_PTT)
    c.send(
        {
            "type": "conversation.item.create",
            "item": {
                "type": "message",
                "role": "user",
                "content": [{"type": "input_text", "text": "I like trains"}],
            },
        }
    )
    created = await c.request({"type": "response.create"}, "response.created")
    stopped = await c.wait_for("output_audio_buffer.stopped", within=15)
    started = c.of("output_audio_buffer.started")[0]
    frames = frames_of(c, created["response"]["id"])
    assert 8 <= len(frames) / (stopped["_t"] - started["_t"]) <= 12
    container = av.open(io.BytesIO(base64.b64decode(frames[0]["delta"])), format="mjpeg")
    first = next(container.decode(video=0))
    assert (first.width, first.height) == (512, 512)
    container.close()
