"""The data channel: labels, session.created/updated, GA validation, error events that keep the
session, conversation item events."""

from __future__ import annotations

from typing import Any

import pytest

from tests.peer.client import user_text
from tests.peer.conftest import PeerHandle

PTT = {"type": "realtime", "audio": {"input": {"turn_detection": None}}}


@pytest.mark.parametrize("label", ["oai-events", "realtime", "anything at all"])
async def test_any_label_and_session_created_first(peer: PeerHandle, label: str) -> None:
    c = await peer.connect(label=label)
    assert c.events[0]["type"] == "session.created"
    assert c.call_id is not None
    record = await peer.call_record(c.call_id)
    assert record["label"] == label
    updated = await c.request({"type": "session.update", "session": PTT}, "session.updated")
    assert updated["session"]["id"] == c.session_id


async def test_session_update_merges_and_reports_full_config(peer: PeerHandle) -> None:
    c = await peer.connect()
    first = await c.request(
        {"type": "session.update", "session": {"type": "realtime", "instructions": "One."}},
        "session.updated",
    )
    s1 = first["session"]
    assert s1["instructions"] == "One."
    assert s1["audio"]["input"]["turn_detection"]["type"] == "server_vad"  # untouched
    second = await c.request(
        {
            "type": "session.update",
            "session": {
                "type": "realtime",
                "audio": {
                    "input": {"turn_detection": {"type": "server_vad", "silence_duration_ms": 300}},
                    "output": {"speed": 1.2},
                },
            },
        },
        "session.updated",
    )
    s2 = second["session"]
    assert s2["instructions"] == "One."  # merged, not replaced
    td = s2["audio"]["input"]["turn_detection"]
    assert td["silence_duration_ms"] == 300 and td["threshold"] == 0.5  # defaults filled
    assert s2["audio"]["output"]["speed"] == 1.2 and s2["audio"]["output"]["voice"] == "marin"
    third = await c.request(
        {"type": "session.update", "session": {**PTT, "tools": [], "instructions": ""}},
        "session.updated",
    )
    assert third["session"]["audio"]["input"]["turn_detection"] is None
    assert third["session"]["instructions"] == ""


@pytest.mark.parametrize(
    ("session", "code", "param"),
    [
        ({"instructions": "no type"}, "missing_required_parameter", "session.type"),
        (
            {"type": "realtime", "turn_detection": None},
            "unknown_parameter",
            "session.turn_detection",
        ),
        (
            {"type": "realtime", "input_audio_format": "pcm16"},
            "unknown_parameter",
            "session.input_audio_format",
        ),
        (
            {"type": "realtime", "audio": {"output": {"voice": "marin", "pitch": 2}}},
            "unknown_parameter",
            "session.audio.output.pitch",
        ),
        ({"type": "realtime", "voice": "alloy"}, "unknown_parameter", "session.voice"),
        (
            {"type": "realtime", "output_modalities": ["image"]},
            "invalid_value",
            "session.output_modalities[0]",
        ),
        (
            {"type": "realtime", "max_output_tokens": 0},
            "invalid_value",
            "session.max_output_tokens",
        ),
        ({"type": "transcription"}, "invalid_value", "session.type"),
        ("not an object", "invalid_type", "session"),
    ],
)
async def test_session_update_ga_validation_errors(
    peer: PeerHandle, session: Any, code: str, param: str
) -> None:
    c = await peer.connect()
    err = await c.request(
        {"type": "session.update", "event_id": "evt_client_1", "session": session}, "error"
    )
    assert err["error"]["code"] == code
    assert err["error"]["param"] == param
    assert err["error"]["event_id"] == "evt_client_1"
    assert err["error"]["type"] == "invalid_request_error"
    # The session is kept and unchanged.
    ok = await c.request(
        {"type": "session.update", "session": {"type": "realtime"}}, "session.updated"
    )
    assert ok["session"]["audio"]["input"]["turn_detection"]["type"] == "server_vad"


async def test_rtav_extension_fields_accepted(peer: PeerHandle) -> None:
    c = await peer.connect(label="realtime")
    rtav = {
        "type": "realtime",
        "model": "gpt-5.2",
        "instructions": "Hi",
        "voice": "default",
        "face": "face_abc",
        "driving": "IdleListeningEncouraging",
        "modalities": ["audio", "text", "image"],
    }
    updated = await c.request({"type": "session.update", "session": rtav}, "session.updated")
    s = updated["session"]
    assert s["face"] == "face_abc" and s["driving"] == "IdleListeningEncouraging"
    assert s["modalities"] == ["audio", "text", "image"]
    assert s["audio"]["output"]["voice"] == "default"  # rtAV's flat voice, mapped
    # Once rtAV-shaped, a later flat voice change is accepted too; a bad modality is not.
    again = await c.request(
        {"type": "session.update", "session": {"type": "realtime", "driving": "SmileTeeth"}},
        "session.updated",
    )
    assert again["session"]["driving"] == "SmileTeeth"
    err = await c.request(
        {"type": "session.update", "session": {"type": "realtime", "modalities": ["smell"]}},
        "error",
    )
    assert err["error"]["param"] == "session.modalities[0]"


async def test_protocol_errors_keep_the_session(peer: PeerHandle) -> None:
    # No mic: a WebRTC client's audio goes into the input buffer as it arrives, and the empty
    # commit below must find it empty however long the cases before it took (on a busy
    # machine over 100 ms of the mic's silence had arrived, and the commit succeeded).
    c = await peer.connect(session=PTT, with_mic=False)
    cases: list[tuple[Any, str, str | None]] = [
        ("{not json", "invalid_json", None),
        ("[1, 2]", "invalid_event", None),
        ({"event_id": "e1"}, "invalid_event", "type"),
        ({"type": "response.explode", "event_id": "e2"}, "invalid_value", "type"),
        (
            {"type": "input_audio_buffer.commit", "event_id": "e3"},
            "input_audio_buffer_commit_empty",
            None,
        ),
        ({"type": "response.cancel", "event_id": "e4"}, "response_cancel_not_active", None),
        (
            {"type": "conversation.item.create", "event_id": "e5"},
            "missing_required_parameter",
            "item",
        ),
        (
            {"type": "response.create", "bogus": True, "event_id": "e6"},
            "unknown_parameter",
            "bogus",
        ),
        (
            {"type": "conversation.item.retrieve", "item_id": "item_nope", "event_id": "e7"},
            "item_not_found",
            "item_id",
        ),
        (
            {"type": "response.create", "response": {"output_modalities": ["audio", "text"]}},
            "invalid_value",
            "response.output_modalities",
        ),
    ]
    for event, code, param in cases:
        err = await c.request(event, "error")  # type: ignore[arg-type]
        assert err["error"]["code"] == code, (event, err)
        assert err["error"]["param"] == param, (event, err)
        if isinstance(event, dict) and "event_id" in event:
            assert err["error"]["event_id"] == event["event_id"]
    # Still a working session: a text turn completes.
    c.send(user_text("hello"))
    done = await c.request({"type": "response.create"}, "response.done")
    assert done["response"]["status"] == "completed"
    assert c.call_id is not None
    record = await peer.call_record(c.call_id)
    assert record["client_events"][:4] == [
        "<invalid_json>",
        "<invalid_event>",
        "<missing_type>",
        "response.explode",
    ]


async def test_second_response_create_while_active(peer: PeerHandle) -> None:
    c = await peer.connect(session=PTT)
    c.send(user_text("I like trains and boats and planes"))
    created = await c.request({"type": "response.create"}, "response.created")
    err = await c.request({"type": "response.create", "event_id": "again"}, "error")
    assert err["error"]["code"] == "conversation_already_has_active_response"
    assert created["response"]["id"] in err["error"]["message"]
    assert err["error"]["event_id"] == "again"
    done = await c.wait_for("response.done")
    assert done["response"]["id"] == created["response"]["id"]
    assert done["response"]["status"] == "completed"
    assert len(c.of("response.created")) == 1


async def test_conversation_item_events(peer: PeerHandle) -> None:
    c = await peer.connect(session=PTT)
    added = await c.request({**user_text("first"), "event_id": "a"}, "conversation.item.added")
    first = added["item"]
    assert first["id"].startswith("item_") and first["status"] == "completed"
    assert added["previous_item_id"] is None
    done = await c.wait_for("conversation.item.done", item=first)
    assert done["item"]["content"][0]["text"] == "first"
    second = await c.request(
        {
            "type": "conversation.item.create",
            "item": {
                "id": "item_mine",
                "type": "message",
                "role": "system",
                "content": [{"type": "input_text", "text": "be nice"}],
            },
        },
        "conversation.item.added",
    )
    assert second["item"]["id"] == "item_mine" and second["previous_item_id"] == first["id"]
    got = await c.request(
        {"type": "conversation.item.retrieve", "item_id": "item_mine"},
        "conversation.item.retrieved",
    )
    assert got["item"]["role"] == "system"
    deleted = await c.request(
        {"type": "conversation.item.delete", "item_id": "item_mine"}, "conversation.item.deleted"
    )
    assert deleted["item_id"] == "item_mine"
    err = await c.request({"type": "conversation.item.delete", "item_id": "item_mine"}, "error")
    assert err["error"]["code"] == "item_not_found"
    dup = await c.request(
        {
            "type": "conversation.item.create",
            "item": {**first, "content": [{"type": "input_text", "text": "x"}]},
        },
        "error",
    )
    assert dup["error"]["param"] == "item.id"


async def test_input_audio_buffer_clear_answers_cleared(peer: PeerHandle) -> None:
    c = await peer.connect(session=PTT)
    ev = await c.request({"type": "input_audio_buffer.clear"}, "input_audio_buffer.cleared")
    assert ev["event_id"].startswith("event_")


async def test_hostile_messages_do_not_break_the_channel(peer: PeerHandle) -> None:
    c = await peer.connect(session=PTT)
    hostile: list[str | bytes] = [
        "[" * 50_000,  # nesting deep enough to exhaust the JSON parser's recursion
        bytes(range(256)) * 100,  # binary message
        '{"type": "session.update", "session": ' + "[" * 20_000 + "]" * 20_000 + "}",
        '{"type": 12}',
        '{"type": "conversation.item.create", "item": {"type": "message", "role": "god"}}',
        '{"type": "response.create", "response": {"max_output_tokens": 1e309}}',
    ]
    for message in hostile:
        mark = len(c.events)
        c.channel.send(message)
        err = await c.wait_for("error", after=mark)
        assert err["error"]["type"] == "invalid_request_error", err
    ok = await c.request({"type": "input_audio_buffer.clear"}, "input_audio_buffer.cleared")
    assert ok and c.pc.connectionState == "connected"
