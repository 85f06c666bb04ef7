"""GPT-Live on the device without a network: settings, the create request, tolerant decoding,
push-to-talk and barge-in against a recording audio part, tool answers, rotation timing."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

import pytest
from openai.types.live.live_create_params import LiveCreateParams
from pydantic import TypeAdapter

from rtedge.live import events as lev
from rtedge.live.conversation import LiveConversation
from rtedge.live.signaling import build_session
from rtedge.live.usage import LiveUsage
from rtedge.peer.live_http import validate_create
from rtedge.realtime.history import History
from rtedge.settings import RealtimeSettings
from rtedge.state import State, Turn
from tests.test_cli import rtedge


class Audio:
    def __init__(self) -> None:
        self.talking = False
        self.calls: list[str] = []

    def flush(self, quiet_s: float = 0.0, holdoff_s: float | None = None) -> None:
        self.calls.append(f"flush:{quiet_s}" if quiet_s else "flush")

    def hold_output(self, held: bool) -> None:
        self.calls.append(f"hold:{held}")

    def earcon(self, name: Literal["press", "release"]) -> None:
        pass


def conversation(**kw: Any) -> tuple[LiveConversation, Audio, list[dict[str, Any]], State]:
    state = State(provider="live")
    audio = Audio()
    sent: list[dict[str, Any]] = []
    conv = LiveConversation(state, audio, LiveUsage(), **kw)
    conv.attach(lambda e: sent.append(e) or True)
    return conv, audio, sent, state


def event(**fields: Any) -> Any:
    return lev.decode_live_event(json.dumps(fields))


def test_live_defaults_and_refused_settings() -> None:
    rt = RealtimeSettings(provider="live", api_key="k")
    assert rt.url == "https://api.openai.com/v1/live/sessions" and rt.model == "gpt-live-1"
    with pytest.raises(ValueError, match="realtime.signaling, realtime.session"):
        RealtimeSettings(provider="live", api_key="k", signaling="unified", session={"x": 1})
    with pytest.raises(ValueError, match="realtime.model"):
        RealtimeSettings(provider="live", api_key="k", model="gpt-realtime-2")


def test_check_refuses_realtime_only_settings_in_one_line(tmp_path: Path) -> None:
    cfg = tmp_path / "live.toml"
    cfg.write_text(
        '[realtime]\nprovider = "live"\napi_key = "k"\ntoken_url = "https://x.example/t"\n'
    )
    out = rtedge("check", "--config", str(cfg))
    assert out.returncode == 78, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "realtime.token_url" in lines[0], out.stderr


def test_create_request_is_valid_and_carries_input_items() -> None:
    rt = RealtimeSettings(provider="live", api_key="k", voice="cedar")
    items = [
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "Hi"}]},
        {
            "type": "message",
            "role": "assistant",
            "content": [{"type": "output_text", "text": "Hello"}],
        },
    ]
    tool = {"type": "function", "name": "set_lamp", "parameters": {"type": "object"}}
    session = build_session(rt, items, [tool])
    assert session["input"] == items and "input" not in build_session(rt)
    body = {"session": session, "transport": {"type": "webrtc", "sdp": "v=0"}}
    TypeAdapter(LiveCreateParams).validate_python(body)  # the SDK's own shape
    validate_create(body)  # strict: no field the SDK's create params lack
    # the history as the device sends it (developer preamble first): the same two checks
    history = History()
    history.user("Hi")
    history.assistant("Hello")
    seeded = build_session(rt, history.live_input())
    assert [i["role"] for i in seeded["input"]] == ["developer", "user", "assistant"]
    body = {"session": seeded, "transport": {"type": "webrtc", "sdp": "v=0"}}
    TypeAdapter(LiveCreateParams).validate_python(body)
    validate_create(body)


def test_decoding_is_tolerant() -> None:
    e = event(type="session.output_transcript.delta", delta=5, start_ms="x")
    assert e.type == "session.output_transcript.delta" and lev.text(e, "delta") is None
    assert lev.number(event(type="x", usage={"seconds": True}), "usage", "seconds") is None
    err = event(type="error", error={"client_event_id": "a", "code": "c"})
    assert lev.client_event_id(err) == "a"


def test_mute_while_up_unmute_on_press_acks_by_id() -> None:
    conv, audio, sent, state = conversation()
    assert sent[-1]["type"] == "session.input_audio.mute"
    conv.on_event(event(type="session.input_audio.muted", client_event_id=sent[-1]["event_id"]))
    assert conv.muted is True and not conv.pending
    conv.press()
    assert sent[-1]["type"] == "session.input_audio.unmute" and audio.talking
    assert state.turn is Turn.LISTENING
    conv.on_event(event(type="session.input_audio.unmuted", client_event_id="other"))
    assert sent[-1]["event_id"] in conv.pending  # an ack for another command proves nothing
    conv.release()
    assert sent[-1]["type"] == "session.input_audio.mute" and state.turn is Turn.THINKING


def test_barge_in_flushes_and_holds_until_release() -> None:
    conv, audio, sent, state = conversation()
    conv.on_voice(True)
    assert state.turn is Turn.SPEAKING and not conv.quiet
    conv.press()
    assert audio.calls == ["flush", "hold:True"] and state.turn is Turn.LISTENING
    conv.on_voice(True)  # the tail of the cut reply: the turn stays with the user
    assert state.turn is Turn.LISTENING
    conv.release()
    assert audio.calls[-1] == "hold:False"
    conv.on_voice(False)
    conv.on_voice(True)
    conv.on_voice(False)
    assert state.turn is Turn.IDLE and conv.quiet


def test_hands_free_barge_in_mutes_the_cut_reply_until_the_model_yields() -> None:
    conv, audio, sent, state = conversation()
    conv.on_voice(True)
    conv.press(button=False)
    # no hold (no release to wait for): muted until half a second of quiet stream
    assert audio.calls == ["flush:0.5"] and state.turn is Turn.LISTENING
    assert sent[-1]["type"] == "session.input_audio.unmute"


def test_transcripts_and_usage_reach_state_and_metrics() -> None:
    conv, _, _, state = conversation()
    conv.on_event(
        event(type="session.input_transcript.delta", delta="Dim the", start_ms=0, end_ms=5)
    )
    conv.on_event(
        event(type="session.output_transcript.delta", delta="Sure", start_ms=9, end_ms=12)
    )
    assert state.transcript_user == "Dim the" and state.transcript_assistant == "Sure"
    conv.on_event(
        event(
            type="session.usage.updated",
            usage={"seconds": 64},
            context_window={"usage_ratio": 0.08},
        )
    )
    assert conv.usage.session_seconds == 64 and conv.usage.context_ratio == 0.08


def test_delegated_function_call_is_answered_then_response_create() -> None:
    conv, _, sent, _ = conversation(run_tool=lambda name, args: json.dumps({"ok": name}))
    conv.on_event(
        event(
            type="response.event",
            delegation_id="item_1",
            event={
                "type": "response.output_item.done",
                "item": {
                    "type": "function_call",
                    "call_id": "c1",
                    "name": "lamp",
                    "arguments": "{}",
                },
            },
        )
    )
    assert sent[-2]["item"] == {
        "type": "function_call_output",
        "call_id": "c1",
        "output": '{"ok": "lamp"}',
    }
    assert sent[-1]["type"] == "response.create"
