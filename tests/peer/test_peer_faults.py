"""Call faults injected through ``POST /_rtedge/faults``, observed by a real client."""

from __future__ import annotations

import asyncio
import json
import time

import aiohttp

from tests.peer.client import Client
from tests.peer.conftest import PeerHandle
from tests.poll import until


async def frames_in(c: Client, seconds: float) -> int:
    n = len(c.received.frames)
    await asyncio.sleep(seconds)
    return len(c.received.frames) - n


async def test_close_datachannel(peer: PeerHandle) -> None:
    c = await peer.connect()
    result = await peer.admin("POST", "faults", {"call": "close_datachannel"})
    assert result["applied"] == [
        {"call_id": c.call_id, "fault": "close_datachannel", "result": "applied"}
    ]
    await asyncio.wait_for(c.closed.wait(), 5)
    assert c.pc.connectionState == "connected"  # only the channel went


async def test_stop_rtp_keeps_connection_then_resume(peer: PeerHandle) -> None:
    c = await peer.connect()
    assert await frames_in(c, 0.5) >= 15  # silence flows while idle, 50 frames/s
    await peer.admin("POST", "faults", {"call": "stop_rtp"})
    await asyncio.sleep(0.3)  # frames in flight
    assert await frames_in(c, 1.0) == 0
    assert c.pc.connectionState == "connected"
    pong = await c.request(
        {"type": "session.update", "session": {"type": "realtime"}}, "session.updated"
    )  # events still flow
    assert pong
    await peer.admin("POST", "faults", {"call": "resume_rtp"})
    await asyncio.sleep(0.3)
    assert await frames_in(c, 0.5) >= 15


async def test_drop_connection(peer: PeerHandle) -> None:
    c = await peer.connect()
    await peer.admin("POST", "faults", {"call": "drop_connection", "call_id": c.call_id})
    await until(lambda: c.pc.connectionState in ("closed", "failed") or c.closed.is_set(), 10)
    assert c.call_id is not None
    record = await peer.call_record(c.call_id)
    assert record["end_reason"] == "fault:drop_connection" and not record["active"]


async def test_malformed_unknown_and_oversized_events(peer: PeerHandle) -> None:
    c = await peer.connect()
    await peer.admin("POST", "faults", {"call": "malformed_event"})
    await until(lambda: bool(c.invalid), within=10)
    try:
        json.loads(c.invalid[0])
        raise AssertionError("the malformed event parsed")
    except ValueError:
        pass
    await peer.admin("POST", "faults", {"call": "unknown_event"})
    unknown = await c.wait_for("rtedge.test.unknown_event")
    assert unknown["event_id"].startswith("event_")
    result = await peer.admin("POST", "faults", {"call": "oversized_event"})
    assert result["applied"][0]["result"] == "sent 65000 bytes"
    err = await c.wait_for("error")
    assert err["error"]["code"] == "rtedge_oversized_event"
    assert len(c.raw_messages[-1].encode()) == 65000
    # Larger than the client advertised (aiortc: 256 KiB) is refused by the sender, not sent.
    result = await peer.admin("POST", "faults", {"call": "oversized_event", "bytes": 300_000})
    assert result["applied"][0]["result"].startswith("not sent")
    pong = await c.request({"type": "input_audio_buffer.clear"}, "input_audio_buffer.cleared")
    assert pong  # the session survived all of it


async def test_event_storm(peer: PeerHandle) -> None:
    c = await peer.connect()
    c.validate = False  # a thousand identical rate_limits events; validated elsewhere
    n0 = len(c.of("rate_limits.updated"))
    t0 = time.monotonic()
    await peer.admin("POST", "faults", {"call": "event_storm", "rate": 1000, "seconds": 1})
    await until(lambda: len(c.of("rate_limits.updated")) - n0 >= 1000, 10)
    elapsed = time.monotonic() - t0
    assert 0.8 <= elapsed <= 3.0, elapsed
    pong = await c.request({"type": "input_audio_buffer.clear"}, "input_audio_buffer.cleared")
    assert pong


async def test_session_expired_fault(peer: PeerHandle) -> None:
    c = await peer.connect()
    other = await peer.connect()
    await peer.admin("POST", "faults", {"call": "session_expired", "call_id": c.call_id})
    err = await c.wait_for("error")
    assert err["error"]["code"] == "session_expired"
    assert err["error"]["message"] == "Your session hit the maximum duration of 60 minutes."
    await until(lambda: c.pc.connectionState in ("closed", "failed") or c.closed.is_set(), 10)
    assert not other.of("error") and other.pc.connectionState == "connected"  # isolated


async def test_call_fault_for_unknown_call_is_404(peer: PeerHandle) -> None:
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            f"{peer.url}/_rtedge/faults", json={"call": "stop_rtp", "call_id": "rtc_nope"}
        ) as resp,
    ):
        assert resp.status == 404
    result = await peer.admin("POST", "faults", {"call": "stop_rtp"})
    assert result["applied"] == []  # no active call: nothing to do


async def test_list_of_faults_in_one_post(peer: PeerHandle) -> None:
    result = await peer.admin("POST", "faults", [{"http_status": 401}, {"slow_answer_s": 0.1}])
    assert [f.get("http_status") for f in result["pending"]] == [401, None]
