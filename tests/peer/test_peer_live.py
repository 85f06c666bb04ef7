"""The peer's GPT-Live route over real WebRTC: create, session.started, mute acks, its own VAD
turn, yielding to the user, appends, usage, close, expiry, strictness, faults, delegation. Every
event the peer sends validates against ``openai.types.live`` (LiveClient)."""

from __future__ import annotations

from typing import Any

import aiohttp
import numpy as np
import pytest

from rtedge.peer import PeerConfig
from rtedge.protocol.live_catalog import SERVER_EVENT_TYPES
from tests.peer.client import RATE, rms, silence, tone
from tests.peer.conftest import PeerHandle
from tests.peer.live_client import LiveClient, live_session
from tests.poll import until


async def live(peer: PeerHandle, session: dict[str, Any] | None = None) -> LiveClient:
    client = LiveClient(peer.url)
    peer.clients.append(client)
    await client.connect_live(session)
    return client


async def post(peer: PeerHandle, body: Any, **kw: Any) -> tuple[int, dict[str, Any]]:
    headers = kw.pop("headers", {"Authorization": "Bearer sk-test"})
    async with aiohttp.ClientSession() as http:
        resp = await http.post(f"{peer.url}/v1/live/sessions", json=body, headers=headers, **kw)
        return resp.status, await resp.json()


async def test_create_answers_201_json_and_session_started(peer: PeerHandle) -> None:
    client = await live(
        peer, live_session(instructions="Be brief.", audio={"output": {"voice": "cedar"}})
    )
    started = client.of("session.started")[0]
    assert client.session_id is not None and client.session_id.startswith("live_")
    resource = started["session"]
    assert resource["id"] == client.session_id and resource["status"] == "active"
    assert resource["instructions"] == "Be brief."
    assert resource["audio"]["output"]["voice"] == "cedar"
    assert resource["expires_at"] > 0
    assert client.types()[0] == "session.started"


@pytest.mark.parametrize(
    ("session", "param", "code"),
    [
        (live_session(turn_detection=None), "session.turn_detection", "unknown_parameter"),
        (
            live_session(audio={"format": {"type": "audio/pcm"}}),
            "session.audio.format",
            "unknown_parameter",
        ),
        (
            live_session(audio={"output": {"voice": "marin", "speed": 1.2}}),
            "session.audio.output.speed",
            "unknown_parameter",
        ),
        ({"instructions": "x"}, "session.model", "missing_required_parameter"),
        (live_session(store=[1]), "session.store", "invalid_type"),
    ],
)
async def test_session_config_is_strict(
    peer: PeerHandle, session: dict[str, Any], param: str, code: str
) -> None:
    status, body = await post(
        peer, {"session": session, "transport": {"type": "webrtc", "sdp": "v=0"}}
    )
    assert status == 400, body
    assert body["error"]["param"] == param and body["error"]["code"] == code


async def test_create_refusals(peer: PeerHandle) -> None:
    ok_body = {"session": live_session(), "transport": {"type": "webrtc", "sdp": "v=0"}}
    status, body = await post(peer, ok_body, headers={})
    assert status == 401
    status, body = await post(peer, {**ok_body, "transport": {"type": "websocket", "sdp": "x"}})
    assert status == 400 and body["error"]["param"] == "transport.type"
    status, body = await post(peer, ok_body)
    assert status == 400 and body["error"]["code"] == "invalid_offer"
    async with aiohttp.ClientSession() as http:
        resp = await http.post(
            f"{peer.url}/v1/live/sessions",
            data="v=0",
            headers={"Authorization": "Bearer k", "Content-Type": "application/sdp"},
        )
        assert resp.status == 415


async def test_mute_and_unmute_are_acked_by_client_event_id(peer: PeerHandle) -> None:
    client = await live(peer)
    muted_id = client.send_event("session.input_audio.mute")
    ack = await client.wait_for("session.input_audio.muted", client_event_id=muted_id)
    assert ack["client_event_id"] == muted_id
    # Muted input reaches the model as silence: a tone makes no turn.
    assert client.mic is not None
    client.mic.play(tone(0.6))
    client.mic.play(silence(1.0))
    await until(lambda: client.mic is not None and client.mic.queued_s == 0, within=10)
    unmute_id = client.send_event("session.input_audio.unmute")
    await client.wait_for("session.input_audio.unmuted", client_event_id=unmute_id)
    assert not client.of("session.input_transcript.delta")


async def test_own_vad_turn_is_answered_with_transcripts_and_voice(peer: PeerHandle) -> None:
    client = await live(peer)
    assert client.mic is not None
    client.mic.play(tone(0.6))
    heard = await client.wait_for("session.input_transcript.delta", within=15)
    assert heard["end_ms"] > heard["start_ms"] >= 0
    first = await client.wait_for("session.output_transcript.delta", within=15)
    assert first["start_ms"] >= heard["end_ms"] - 100
    await until(lambda: rms(client.received.pcm_between(first["_t"], first["_t"] + 5)) > 0.01, 15)
    # No Realtime turn machinery or speaking events: only Live event types.
    assert set(client.types()) <= SERVER_EVENT_TYPES


async def test_peer_yields_within_a_frame_when_it_hears_the_user(peer: PeerHandle) -> None:
    client = await live(peer)
    assert client.mic is not None
    client.send_event(
        "session.instructions.append",
        delegation_id=None,
        content='Say "one two three four five six seven eight nine ten eleven twelve"',
    )
    await client.wait_for("session.output_transcript.delta", within=15)
    await until(lambda: bool(client.received.frames) and rms(client.received.frames[-1]) > 0.01, 15)
    client.mic.play(tone(0.5))
    record: dict[str, Any] = {}

    async def yielded() -> bool:
        record.update(await peer.call_record(await _call_id(peer, client)))
        return bool(record["live"]["yields"])

    for _ in range(200):
        if await yielded():
            break
        await until(lambda: True, 0.05)
    assert record["live"]["yields"], record["live"]
    assert record["live"]["yields"][0] <= 100.0


async def _call_id(peer: PeerHandle, client: LiveClient) -> str:
    calls = await peer.admin("GET", "calls")
    return str(next(c["call_id"] for c in calls if c["session_id"] == client.session_id))


async def test_instructions_append_is_acked_and_spoken(peer: PeerHandle) -> None:
    client = await live(peer)
    eid = client.send_event(
        "session.instructions.append", delegation_id=None, content='Say "hello there"'
    )
    ack = await client.wait_for("session.instructions.appended", client_event_id=eid)
    assert ack["end_ms"] >= ack["start_ms"]
    await client.wait_for("session.output_transcript.delta", within=15)
    said = "".join(e["delta"] for e in client.of("session.output_transcript.delta"))
    await until(
        lambda: (
            "".join(e["delta"] for e in client.of("session.output_transcript.delta")).strip()
            == "hello there"
        ),
        15,
    )
    assert said


@pytest.mark.parametrize("peer_config", [PeerConfig(live_usage_interval_s=0.3)])
async def test_usage_updates_at_the_configured_interval(peer: PeerHandle) -> None:
    client = await live(peer)
    first = await client.wait_for("session.usage.updated", within=10)
    second = await client.wait_for(
        "session.usage.updated", within=10, after=client.events.index(first) + 1
    )
    assert second["usage"]["seconds"] > first["usage"]["seconds"] > 0
    assert 0 <= second["context_window"]["usage_ratio"] < 1


async def test_close_answers_closed_then_the_call_ends(peer: PeerHandle) -> None:
    client = await live(peer)
    client.send_event("session.close")
    closed = await client.wait_for("session.closed", within=15)
    assert closed["reason"] == "close_requested"
    assert closed["session"]["id"] == client.session_id and closed["usage"]["seconds"] > 0
    await until(lambda: client.closed.is_set() or client.pc.connectionState == "closed", 15)


@pytest.mark.parametrize("peer_config", [PeerConfig(max_session_s=2.0)])
async def test_expiry_closes_with_reason_expired(peer: PeerHandle) -> None:
    client = await live(peer)
    started = client.of("session.started")[0]
    closed = await client.wait_for("session.closed", within=15)
    assert closed["reason"] == "expired"
    assert started["session"]["expires_at"] <= closed["session"]["expires_at"] + 1


async def test_session_start_unknown_and_malformed_events_get_errors(peer: PeerHandle) -> None:
    client = await live(peer)
    eid = client.send_event("session.start", session=live_session())
    err = await client.wait_for("error")
    assert err["error"]["client_event_id"] == eid and err["error"]["code"] == "invalid_event"
    mark = len(client.events)
    client.send_event("response.cancel")
    err = await client.wait_for("error", after=mark)
    assert err["error"]["param"] == "type"
    mark = len(client.events)
    client.send("{not json")
    err = await client.wait_for("error", after=mark)
    assert err["error"]["code"] == "invalid_json"


async def test_http_faults_apply_to_the_live_route(peer: PeerHandle) -> None:
    await peer.admin(
        "POST", "faults", {"endpoint": "live_sessions", "http_status": 429, "retry_after": 3}
    )
    status, body = await post(
        peer, {"session": live_session(), "transport": {"type": "webrtc", "sdp": "v=0"}}
    )
    assert status == 429 and body["error"]["code"] == "rate_limit_exceeded"


async def test_responses_delegation_function_call_is_answered(peer: PeerHandle) -> None:
    tool = {
        "type": "function",
        "name": "set_lamp",
        "description": "Dim the lamp.",
        "parameters": {"type": "object", "properties": {"level": {"type": "integer"}}},
    }
    client = await live(
        peer,
        live_session(
            delegation={
                "type": "responses",
                "responses": {"model": "gpt-5", "tools": [tool], "tool_choice": "required"},
            }
        ),
    )
    assert client.mic is not None
    client.mic.play(tone(0.6))
    created = await client.wait_for("session.delegation.created", within=15)
    assert created["delegation"]["target"] == "responses"
    done = next(
        e for e in client.of("response.event") if e["event"]["type"] == "response.output_item.done"
    )
    call = done["event"]["item"]
    assert call["name"] == "set_lamp" and done["delegation_id"] == created["delegation"]["id"]
    client.send_event(
        "response.item.create",
        item={"type": "function_call_output", "call_id": call["call_id"], "output": '{"ok": true}'},
    )
    client.send_event("response.create")
    await until(
        lambda: any(
            e["event"]["type"] == "response.completed" for e in client.of("response.event")
        ),
        15,
    )
    await client.wait_for("session.output_transcript.delta", within=15)


async def _recorded(peer: PeerHandle, client: LiveClient) -> list[dict[str, Any]]:
    calls = await peer.admin("GET", "calls")
    call = next(c for c in calls if c["session_id"] == client.session_id)
    return list(call["live"].get("delegations", []))


@pytest.mark.parametrize("peer_config", [PeerConfig(live_delegate="client")])
@pytest.mark.parametrize("kind", ["commentary", "thinking"])
async def test_client_delegation_waits_for_the_clients_append(peer: PeerHandle, kind: str) -> None:
    client = await live(peer)  # no delegation in the create: client delegation
    assert client.mic is not None
    client.mic.play(tone(0.6))
    created = await client.wait_for("session.delegation.created", within=15)
    delegation = created["delegation"]
    assert delegation["target"] == "client" and "response_id" not in delegation
    # The reply waits for the client: nothing is said meanwhile.
    await until(lambda: True, 0.3)
    assert not client.of("session.output_transcript.delta")
    assert (await _recorded(peer, client))[-1] == {
        "id": delegation["id"],
        "target": "client",
        "answer": None,
    }
    eid = client.send_event(
        f"session.{kind}.append", delegation_id=delegation["id"], content="The lamp is at 20."
    )
    await client.wait_for(f"session.{kind}.appended", client_event_id=eid)
    await client.wait_for("session.output_transcript.delta", within=15)
    entry = (await _recorded(peer, client))[-1]
    assert entry["answer"] == kind and entry["content"] == "The lamp is at 20.", entry
    # An id that names no client delegation is refused.
    bad = client.send_event("session.commentary.append", delegation_id="item_nope", content="x")
    error = await client.wait_for("error", within=5)
    assert error["error"]["client_event_id"] == bad and error["error"]["param"] == "delegation_id"


@pytest.mark.parametrize("peer_config", [PeerConfig(live_delegate="client")])
async def test_client_delegation_is_not_sent_under_responses_delegation(peer: PeerHandle) -> None:
    client = await live(
        peer,
        live_session(
            delegation={"type": "responses", "responses": {"model": "gpt-5", "tools": []}}
        ),
    )
    assert client.mic is not None
    client.mic.play(tone(0.6))
    await client.wait_for("session.output_transcript.delta", within=15)
    assert not client.of("session.delegation.created")


@pytest.mark.parametrize("peer_config", [PeerConfig(live_delegate="tool")])
async def test_delegate_tool_calls_the_first_tool_and_records_the_output(
    peer: PeerHandle,
) -> None:
    tool = {"type": "function", "name": "device_time", "parameters": {"type": "object"}}
    client = await live(
        peer,
        live_session(
            delegation={"type": "responses", "responses": {"model": "gpt-5", "tools": [tool]}}
        ),
    )
    assert client.mic is not None
    client.mic.play(tone(0.6))
    created = await client.wait_for("session.delegation.created", within=15)
    done = next(
        e for e in client.of("response.event") if e["event"]["type"] == "response.output_item.done"
    )
    call = done["event"]["item"]
    client.send_event(
        "response.item.create",
        item={"type": "function_call_output", "call_id": call["call_id"], "output": '{"t": 1}'},
    )
    client.send_event("response.create")
    await client.wait_for("session.output_transcript.delta", within=15)
    entry = (await _recorded(peer, client))[-1]
    assert entry == {
        "id": created["delegation"]["id"],
        "target": "responses",
        "tool": "device_time",
        "call_id": call["call_id"],
        "output": '{"t": 1}',
    }


@pytest.mark.parametrize("peer_config", [PeerConfig(mode="echo")])
async def test_echo_mode_plays_back_the_users_turn(peer: PeerHandle) -> None:
    client = await live(peer)
    assert client.mic is not None
    # pauses shorter than the peer's silence timer (500 ms): one turn of three tones
    signal = np.concatenate(
        [tone(0.3, 400), silence(0.2), tone(0.3, 900), silence(0.2), tone(0.3, 1500)]
    )
    client.mic.play(signal)
    heard = await client.wait_for("session.input_transcript.delta", within=15)
    assert 1.0 <= (heard["end_ms"] - heard["start_ms"]) / 1000 <= 2.5, heard
    t0 = heard["_t"]

    def tones() -> list[int]:
        """The tones heard after the turn, in order: the peak of each loud 40 ms (a frame lost
        on a busy machine leaves a gap, not another tone)."""
        got = client.received.pcm_between(t0 - 0.5, t0 + 8).astype(np.float64)
        n = int(0.04 * RATE)
        heard: list[int] = []
        for i in range(0, got.size - n, n):
            part = got[i : i + n]
            if np.sqrt(np.mean(part**2)) < 1000:
                continue
            peak = np.argmax(np.abs(np.fft.rfft(part))) * RATE / n
            near = min((400, 900, 1500), key=lambda f: abs(f - peak))
            if abs(near - peak) < 60 and (not heard or heard[-1] != near):
                heard.append(near)
        return heard

    # the reply is the turn again: its three tones, in their order
    await until(lambda: tones()[-3:] == [400, 900, 1500], 20, "the turn played back")
    assert not client.of("session.output_transcript.delta")  # no words: it is the user's audio
