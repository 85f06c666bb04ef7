"""A response and a conversation on their own: ``ResponseRun`` driven by a host that is not a
``Session`` (only what ``ResponseHost`` names), and the conversation's item events."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from rtedge.peer import sessionconf
from rtedge.peer.audio_out import Playout
from rtedge.peer.config import PeerConfig
from rtedge.peer.items import USER_AUDIO_KEPT, Conversation
from rtedge.peer.record import CallRecord
from rtedge.peer.response import ResponseHost, ResponseRun
from rtedge.peer.sessionconf import SessionError
from rtedge.peer.voice import Voice

JsonDict = dict[str, Any]


class BareHost:
    """Exactly the members of ``ResponseHost``, nothing of a session's."""

    def __init__(self) -> None:
        self.config = PeerConfig(voice_engine="tones")
        self.effective = sessionconf.default_session("sess_1", "gpt-realtime", "", None)
        self.voice = Voice("tones")
        self.record = CallRecord("call_1", "sess_1")
        self.events: list[JsonDict] = []
        self.items = Conversation(self.events.append, self.record)
        self.finished: list[ResponseRun] = []

    def send(self, event: JsonDict) -> None:
        self.events.append(event)

    def start_playout(self, playout: Playout) -> None:
        raise AssertionError("a text response plays no audio")

    def response_finished(self, run: ResponseRun) -> None:
        self.finished.append(run)

    def types(self) -> list[str]:
        return [e["type"] for e in self.events]


async def test_a_text_response_runs_against_the_narrow_host() -> None:
    host = BareHost()
    as_protocol: ResponseHost = host  # (mypy --strict on this file checks the members match)
    user = {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "hi"}]}
    host.items.create({"item": user})
    run = ResponseRun(as_protocol, {"output_modalities": ["text"]})
    await run.run()
    assert host.finished == [run] and run.status == "completed"
    types = host.types()
    assert types.index("response.output_item.added") < types.index("response.output_text.delta")
    assert types[-2:] == ["response.done", "rate_limits.updated"]
    done = next(e for e in host.events if e["type"] == "response.done")
    assert done["response"]["conversation_id"] == host.items.id
    text = "".join(e["delta"] for e in host.events if e["type"] == "response.output_text.delta")
    assert text == run.sent_text and text  # the deltas are what it says it sent
    assert [i["role"] for i in host.items.values()] == ["user", "assistant"]


def test_items_are_announced_in_order_and_refused_when_unknown() -> None:
    events: list[JsonDict] = []
    items = Conversation(events.append, CallRecord("call_1", "sess_1"))
    items.create({"item": {"id": "a", "type": "message", "role": "user", "content": []}})
    items.create({"item": {"id": "b", "type": "message", "role": "user", "content": []}})
    added = [e for e in events if e["type"] == "conversation.item.added"]
    assert [(e["item"]["id"], e["previous_item_id"]) for e in added] == [("a", None), ("b", "a")]
    with pytest.raises(SessionError) as dup:
        items.create({"item": {"id": "a", "type": "message", "role": "user", "content": []}})
    assert dup.value.code == "invalid_value"
    items.delete("a")
    assert events[-1] == {"type": "conversation.item.deleted", "item_id": "a"}
    with pytest.raises(SessionError) as gone:
        items.retrieve("a")
    assert gone.value.code == "item_not_found"


def test_user_audio_is_kept_for_the_latest_items_only() -> None:
    items = Conversation(lambda e: None, CallRecord("call_1", "sess_1"))
    for i in range(USER_AUDIO_KEPT + 3):
        items.commit(f"item_{i}", np.zeros(4800, np.int16), transcribe=False)
    assert list(items.user_audio) == [f"item_{i}" for i in range(3, USER_AUDIO_KEPT + 3)]
    assert items.user_audio_ms["item_0"] == 100  # lengths stay for usage
