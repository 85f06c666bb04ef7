"""Every turn ends: early endings, refusals of our own events (matched by ``event_id``), a refused
commit, the session the service actually took, and rate limits. The data channel is the ``send``
seam; tests/faults/test_loose_events.py does the same over real calls with the peer."""

from __future__ import annotations

import json
import logging
from typing import Any, Literal

import pytest

from rtedge.protocol.server import decode_server_event
from rtedge.realtime.conversation import COMMIT_ACK_S, COMMIT_DELAY_S, Conversation
from rtedge.realtime.session_shape import build_session
from rtedge.settings import RealtimeSettings
from rtedge.state import State, Turn
from rtedge.timers import ManualTimers
from tests.realtime.test_conversation import advance


class Audio:
    talking = False

    def flush(self) -> None:
        pass

    def earcon(self, name: Literal["press", "release"]) -> None:
        pass


def setup() -> tuple[Conversation, State, list[dict[str, Any]]]:
    state = State()
    sent: list[dict[str, Any]] = []
    s = RealtimeSettings.model_validate({"provider": "openai", "voice": "cedar"})
    conv = Conversation(state, Audio(), session=build_session(s), timers=ManualTimers())
    conv.attach(lambda e: sent.append(e) or True)
    return conv, state, sent


def feed(conv: Conversation, event: dict[str, Any]) -> None:
    conv.on_event(decode_server_event(json.dumps(event)))


def last(sent: list[dict[str, Any]], etype: str) -> dict[str, Any]:
    return [e for e in sent if e["type"] == etype][-1]


async def turn(conv: Conversation, sent: list[dict[str, Any]]) -> None:
    """A press and a release; the commit acknowledged, so response.create goes out."""
    conv.press()
    conv.release()
    advance(conv, COMMIT_DELAY_S)
    feed(conv, {"type": "input_audio_buffer.committed", "item_id": "item_1"})
    assert sent[-1]["type"] == "response.create"


@pytest.mark.parametrize("status", ["failed", "incomplete", "cancelled"])
async def test_early_endings_return_to_idle_with_the_reason_logged(
    status: str, caplog: pytest.LogCaptureFixture
) -> None:
    conv, state, sent = setup()
    await turn(conv, sent)
    feed(conv, {"type": "response.created", "response": {"id": "resp_1"}})
    assert state.turn is Turn.THINKING
    details = {"type": status, "reason": "max_output_tokens" if status != "failed" else None}
    if status == "failed":
        details["error"] = {"type": "server_error", "code": "overloaded", "message": "busy"}
    with caplog.at_level(logging.INFO):
        feed(
            conv,
            {
                "type": "response.done",
                "response": {"id": "resp_1", "status": status, "status_details": details},
            },
        )
    assert state.turn is Turn.IDLE and conv.quiet
    line = next(r.getMessage() for r in caplog.records if "ended" in r.getMessage())
    assert status in line
    assert ("overloaded" if status == "failed" else "max_output_tokens") in line


async def test_error_answering_response_create_ends_the_turn() -> None:
    conv, state, sent = setup()
    await turn(conv, sent)
    create = last(sent, "response.create")
    assert state.turn is Turn.THINKING
    feed(
        conv,
        {
            "type": "error",
            "error": {
                "type": "invalid_request_error",
                "code": "conversation_already_has_active_response",
                "message": "busy",
                "event_id": create["event_id"],
            },
        },
    )
    assert state.turn is Turn.IDLE


async def test_error_answering_something_else_does_not_end_the_turn() -> None:
    conv, state, sent = setup()
    await turn(conv, sent)
    feed(conv, {"type": "error", "error": {"code": "x", "event_id": "evt_not_ours"}})
    assert state.turn is Turn.THINKING


async def test_no_response_create_after_a_refused_commit() -> None:
    conv, state, sent = setup()
    conv.press()
    conv.release()
    advance(conv, COMMIT_DELAY_S)
    commit = last(sent, "input_audio_buffer.commit")
    feed(
        conv,
        {
            "type": "error",
            "error": {
                "code": "input_audio_buffer_commit_empty",
                "message": "buffer too small",
                "event_id": commit["event_id"],
            },
        },
    )
    assert state.turn is Turn.IDLE
    advance(conv, COMMIT_ACK_S)
    assert "response.create" not in [e["type"] for e in sent]


async def test_session_updated_is_compared_with_the_request() -> None:
    conv, state, sent = setup()
    asked = last(sent, "session.update")["session"]
    took = json.loads(json.dumps(asked))
    took["audio"]["output"]["voice"] = "marin"  # the service kept its own voice
    took["audio"]["input"]["format"] = {"type": "audio/pcm", "rate": 24000}  # extra: fine
    feed(conv, {"type": "session.updated", "session": took})
    assert len(state.session_refused) == 1
    assert state.session_refused[0].startswith("audio.output.voice (asked 'cedar', got 'marin')")
    assert any("session field refused: audio.output.voice" in p for p in state.problems())
    feed(conv, {"type": "session.updated", "session": asked})
    assert state.session_refused == [] and state.problems() == ["starting"]


async def test_error_answering_session_update_shows_the_field() -> None:
    conv, state, sent = setup()
    update = last(sent, "session.update")
    feed(
        conv,
        {
            "type": "error",
            "error": {
                "code": "invalid_value",
                "param": "session.audio.output.voice",
                "message": "no such voice",
                "event_id": update["event_id"],
            },
        },
    )
    assert state.session_refused and "session.audio.output.voice" in state.session_refused[0]


async def test_loose_events_still_move_the_turn() -> None:
    conv, state, sent = setup()
    await turn(conv, sent)
    feed(conv, {"type": "response.created", "response": {"id": "resp_1"}})
    feed(conv, {"type": "output_audio_buffer.started"})  # no response_id
    assert state.turn is Turn.SPEAKING
    feed(conv, {"type": "response.audio_transcript.delta", "delta": "Hel"})  # beta name
    feed(conv, {"type": "response.text.delta", "delta": "lo"})
    assert state.transcript_assistant == "Hello"
    # no event_id, rtAV's image modality
    feed(conv, {"type": "response.done", "response": {"output_modalities": ["audio", "image"]}})
    assert conv.response_id is None
    feed(conv, {"type": "output_audio_buffer.stopped"})
    assert state.turn is Turn.IDLE and conv.quiet


async def test_rate_limits_are_kept() -> None:
    conv, state, _ = setup()
    feed(
        conv,
        {
            "type": "rate_limits.updated",
            "rate_limits": [
                {"name": "requests", "limit": 100, "remaining": 99, "reset_seconds": 0.5},
                {"name": "tokens", "limit": 1000, "remaining": "lots"},  # malformed: dropped
                {"limit": 5},  # nameless: skipped
            ],
        },
    )
    assert state.rate_limits == {
        "requests": {"limit": 100, "remaining": 99, "reset_seconds": 0.5},
        "tokens": {"limit": 1000, "remaining": None, "reset_seconds": None},
    }
    assert state.snapshot()["rate_limits"]["requests"]["remaining"] == 99
