"""``rtedge peer --profile minimal``: the shape of an independent Realtime server, over real
WebRTC on loopback with the test client (issue 13)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp
import pytest

from rtedge.peer import PeerConfig
from tests.peer.client import silence, tone
from tests.peer.conftest import PeerHandle
from tests.peer.test_peer_turns import user_text
from tests.poll import until

PTT_UPDATE = {
    "type": "session.update",
    "session": {"type": "realtime", "audio": {"input": {"turn_detection": None}}},
}


@pytest.fixture
def peer_config() -> PeerConfig:
    return PeerConfig(profile="minimal")


async def post(url: str, **kw: Any) -> tuple[int, str]:
    async with aiohttp.ClientSession() as http, http.request(url=url, **kw) as resp:
        return resp.status, await resp.text()


async def test_raw_sdp_with_no_key_and_no_secrets_or_multipart(peer: PeerHandle) -> None:
    status, _ = await post(
        f"{peer.url}/v1/realtime/client_secrets", method="POST", json={"session": {}}
    )
    assert status == 404
    with pytest.raises(AssertionError, match="415"):
        await peer.client().connect(multipart=True)
    c = await peer.connect(key="")  # no Authorization header at all
    assert c.call_id
    # no POST .../hangup; DELETE on the Location ends the call
    hangup = f"{peer.url}/v1/realtime/calls/{c.call_id}"
    assert (await post(hangup + "/hangup", method="POST"))[0] == 404
    assert (await post(hangup, method="DELETE"))[0] == 200
    record = await peer.call_record(c.call_id)
    assert record["end_reason"] == "hangup" and not record["active"]


async def test_events_legacy_items_no_output_buffer_events_clear_refused(
    peer: PeerHandle,
) -> None:
    c = await peer.connect(key="")
    await c.request(PTT_UPDATE, "session.updated")
    c.send({"type": "input_audio_buffer.clear", "event_id": "evt_clear_1"})
    err = await c.wait_for("error")
    assert err["error"]["event_id"] == "evt_clear_1"
    c.send(user_text("What is 2 plus 3?"))
    await c.request({"type": "response.create"}, "response.created")
    await c.wait_for("response.done", within=15)
    frames_at_done = len(c.received.frames)
    await until(lambda: len(c.received.frames) > frames_at_done, 5)  # the reply's audio
    types = c.types()
    assert "conversation.item.created" in types
    assert not [t for t in types if t.startswith("output_audio_buffer.")], types
    assert "conversation.item.added" not in types and "conversation.item.done" not in types
    # silence between replies: once the reply has played, no RTP comes at all
    await until(lambda: c.received.frames and c.received.times[-1] < time.monotonic() - 1.0, 20)
    n = len(c.received.frames)
    await asyncio.sleep(1.5)  # a window in which no RTP may come
    assert len(c.received.frames) == n


async def test_own_vad_despite_turn_detection_null_and_stale_reply(peer: PeerHandle) -> None:
    """Told turn_detection null, it still runs its VAD: speech then silence commits and starts
    a reply nobody asked for; one asked for meanwhile is followed by a stale one."""
    c = await peer.connect(key="")
    await c.request(PTT_UPDATE, "session.updated")
    assert c.mic is not None
    c.mic.play(tone(1.0))
    c.mic.play(silence(1.0))
    await c.wait_for("input_audio_buffer.speech_started", within=10)
    await c.wait_for("input_audio_buffer.speech_stopped", within=10)
    created = await c.wait_for("response.created", within=10)
    assert created["response"]["id"]
    await c.wait_for("response.done", within=15)
    # the client asks for a reply while the user's speech is still open: the VAD's own reply
    # comes right after it (the stale "reply to nothing")
    mark = len(c.events)
    c.mic.play(tone(1.0))
    await c.wait_for("input_audio_buffer.speech_started", within=10, after=mark)
    c.send({"type": "response.create"})
    await c.wait_for("input_audio_buffer.speech_stopped", within=10, after=mark)
    await until(lambda: len(c.of("response.created")) >= 3, 20)
    ours, stale = (e["response"]["id"] for e in c.of("response.created")[1:3])
    # cancelling the stale one by id leaves ours alone
    c.send({"type": "response.cancel", "response_id": stale})
    await until(
        lambda: any(
            e["response"]["id"] == stale and e["response"]["status"] == "cancelled"
            for e in c.of("response.done")
        ),
        10,
    )
    done_ours = [e for e in c.of("response.done") if e["response"]["id"] == ours]
    assert done_ours and done_ours[0]["response"]["status"] == "completed"
