"""Session cap, several isolated calls at once, and nothing left behind when calls end."""

from __future__ import annotations

import asyncio
import gc
import os
import threading
import time
from typing import Any

import aiohttp
import pytest

from rtedge.peer import PeerConfig
from rtedge.peer.audio_out import OutputTrack
from rtedge.peer.server import PEER
from tests.peer.client import Client
from tests.peer.conftest import PeerHandle
from tests.poll import until

PTT = {"type": "realtime", "audio": {"input": {"turn_detection": None}}}


@pytest.mark.parametrize("peer_config", [PeerConfig(max_session_s=1.5)])
async def test_session_cap_sends_session_expired_and_closes(peer: PeerHandle) -> None:
    t0 = time.monotonic()
    c = await peer.connect()
    expires_at = c.events[0]["session"]["expires_at"]
    assert abs(expires_at - (time.time() + 1.5)) < 2
    err = await c.wait_for("error", within=5)
    assert err["error"]["code"] == "session_expired"
    assert err["error"]["type"] == "invalid_request_error"
    assert 1.3 <= time.monotonic() - t0 <= 3.0
    await until(lambda: c.pc.connectionState in ("closed", "failed") or c.closed.is_set(), 10)
    assert c.call_id is not None
    record = await peer.call_record(c.call_id)
    assert record["end_reason"] == "session_expired"


async def test_concurrent_calls_are_isolated(peer: PeerHandle) -> None:
    questions = {
        "what is 2 plus 3?": "2 plus 3 is 5.",
        "what is 4 times 6?": "4 times 6 is 24.",
        "hello": "Hello! How can I help?",
    }
    clients = await asyncio.gather(*(peer.connect(session=PTT) for _ in questions))
    assert len({c.session_id for c in clients}) == 3 and len({c.call_id for c in clients}) == 3

    async def turn(c: Client, q: str) -> str:
        c.send(
            {
                "type": "conversation.item.create",
                "item": {
                    "type": "message",
                    "role": "user",
                    "content": [{"type": "input_text", "text": q}],
                },
            }
        )
        await c.request({"type": "response.create"}, "response.done")
        await c.wait_for("output_audio_buffer.stopped", within=15)
        return str(c.of("response.output_audio_transcript.done")[0]["transcript"])

    answers = await asyncio.gather(*(turn(c, q) for c, q in zip(clients, questions, strict=True)))
    assert answers == list(questions.values())
    for c in clients:
        assert len(c.of("response.created")) == 1  # nobody saw another call's response
        items = {e["item"]["id"] for e in c.of("conversation.item.added")}
        assert len(items) == 2
    stats = await peer.admin("GET", "stats")
    assert stats["active_calls"] == 3 and stats["calls_started"] == 3


def _tracks_alive() -> int:
    gc.collect()
    return sum(1 for o in gc.get_objects() if isinstance(o, OutputTrack))


async def test_ended_calls_release_tasks_threads_and_tracks(peer: PeerHandle) -> None:
    # Warm up once: the default executor (Opus encoding) keeps its worker threads for reuse.
    warm = await peer.connect(session=PTT)
    warm.send({"type": "response.create"})
    await warm.wait_for("output_audio_buffer.stopped", within=15)
    await warm.close()
    registry = peer.app[PEER].registry
    await until(lambda: not registry.active, within=10)
    await asyncio.sleep(0.3)  # the closed call's last callbacks run before the baseline
    tasks0 = len(asyncio.all_tasks())
    threads0 = {t.name for t in threading.enumerate()}
    assert _tracks_alive() == 0
    clients = []
    for _i in range(3):
        c = peer.client()
        await c.connect(session=PTT)
        c.send({"type": "response.create"})
        clients.append(c)
    for c in clients:
        await c.wait_for("output_audio_buffer.started", within=10)
    assert len(registry.active) == 3
    busy = await peer.admin("GET", "stats")
    assert busy["call_tasks"] >= 3
    assert sum(n.startswith("audio-decoder") for n in busy["thread_names"]) >= 3
    # End them three ways: client closes, hangup, drop fault.
    await clients[0].close()
    await peer.admin("POST", "faults", {"call": "drop_connection", "call_id": clients[1].call_id})
    await registry.active[str(clients[2].call_id)].close("hangup")
    await until(lambda: not registry.active, 15)
    await clients[1].close()
    await clients[2].close()
    peer.clients.clear()

    async def wound_down() -> dict[str, Any] | None:
        stats = await peer.admin("GET", "stats")
        return stats if stats["active_calls"] == 0 and stats["call_tasks"] == 0 else None

    stats = await until(wound_down, 5, "no call and none of its tasks left")
    assert stats["calls_ended"] == stats["calls_started"] == 4
    await until(lambda: len(asyncio.all_tasks()) <= tasks0, 3)  # aiohttp finishing a request
    # aiortc encodes Opus in the loop's default executor: its pooled workers ("asyncio_N") are
    # shared by all calls and reused, bounded by the pool size. Anything else would be a leak.
    leftover = {t.name for t in threading.enumerate()} - threads0
    assert not {n for n in leftover if not n.startswith("asyncio_")}, leftover
    pool = [t for t in threading.enumerate() if t.name.startswith("asyncio_")]
    assert len(pool) <= min(32, (os.cpu_count() or 1) + 4)
    assert _tracks_alive() == 0
    reasons = sorted(r["end_reason"] for r in (await peer.admin("GET", "calls"))[-3:])
    assert reasons == ["connection_closed", "fault:drop_connection", "hangup"]


async def test_abandoned_answer_times_out() -> None:
    from tests.peer.conftest import start_peer

    runner, url = await start_peer(PeerConfig(connect_timeout_s=1.0))
    try:
        c = Client(url)
        offer = await c.pc.createOffer()
        await c.pc.setLocalDescription(offer)
        async with (  # POST the offer, never apply the answer
            aiohttp.ClientSession() as http,
            http.post(
                f"{url}/v1/realtime/calls",
                data=c.pc.localDescription.sdp,
                headers={"Authorization": "Bearer k", "Content-Type": "application/sdp"},
            ) as resp,
        ):
            assert resp.status == 201
        registry = runner.app[PEER].registry
        assert len(registry.active) == 1
        await until(lambda: not registry.active, 5)
        assert registry.ended[-1].end_reason == "connect_timeout"
        await c.close()
    finally:
        await runner.cleanup()
