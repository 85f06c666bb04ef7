"""Strict in what we send: every event the daemon sends validates against the ``openai``
package's client event models with no field they do not declare, carries its own ``event_id``,
and is also accepted by the peer's strict models (generated from the same package)."""

from __future__ import annotations

import json
from typing import Any, Literal

import pytest

from rtedge.protocol import client
from rtedge.protocol.server import decode_server_event
from rtedge.protocol.strict_client import client_event_adapter as peer_adapter
from rtedge.realtime.conversation import COMMIT_DELAY_S, Conversation
from rtedge.realtime.session_shape import build_session
from rtedge.settings import RealtimeSettings
from rtedge.state import State
from rtedge.timers import ManualTimers
from tests.protocol.reference import client_event_adapter, first_extra


def check(event: dict[str, Any]) -> None:
    model = client_event_adapter.validate_python(event)
    assert first_extra(model) is None, (event["type"], first_extra(model))
    peer_adapter.validate_python(event)
    assert isinstance(event["event_id"], str) and event["event_id"]


class Audio:
    talking = False

    def flush(self) -> None:
        pass

    def earcon(self, name: Literal["press", "release"]) -> None:
        pass


def feed(conv: Conversation, event: dict[str, Any]) -> None:
    conv.on_event(decode_server_event(json.dumps(event)))


@pytest.mark.parametrize("provider", ["openai", "local"])
@pytest.mark.parametrize("hands_free", [False, True])
@pytest.mark.parametrize("log_transcripts", [False, True])
def test_session_update_is_a_valid_client_event(
    provider: str, hands_free: bool, log_transcripts: bool
) -> None:
    s = RealtimeSettings.model_validate(
        {"provider": provider, "hands_free": hands_free, "log_transcripts": log_transcripts}
    )
    event = client.session_update(build_session(s))
    check(event)
    assert "model" not in event["session"]


async def test_every_event_a_conversation_sends_is_valid() -> None:
    """Drive the turn logic through everything it can send: session, push-to-talk, barge-in,
    a refused tool call and the reply after it."""
    sent: list[dict[str, Any]] = []
    timers = ManualTimers()
    s = RealtimeSettings.model_validate({"provider": "openai"})
    conv = Conversation(State(), Audio(), session=build_session(s), timers=timers)
    conv.attach(lambda e: sent.append(e) or True)
    conv.press()
    conv.release()
    timers.advance(COMMIT_DELAY_S)
    feed(conv, {"type": "input_audio_buffer.committed", "item_id": "item_1"})
    feed(conv, {"type": "response.created", "response": {"id": "resp_1"}})
    feed(conv, {"type": "output_audio_buffer.started", "response_id": "resp_1"})
    conv.press()  # barge-in: cancel + clear
    conv.release()
    feed(
        conv,
        {"type": "response.function_call_arguments.done", "call_id": "call_1", "name": "lights"},
    )
    feed(conv, {"type": "response.done", "response": {"id": "resp_1", "status": "completed"}})
    types = [e["type"] for e in sent]
    for expected in (
        "session.update",
        "input_audio_buffer.clear",
        "input_audio_buffer.commit",
        "response.create",
        "response.cancel",
        "output_audio_buffer.clear",
        "conversation.item.create",
    ):
        assert expected in types, (expected, types)
    for event in sent:
        check(event)
    assert len({e["event_id"] for e in sent}) == len(sent)
