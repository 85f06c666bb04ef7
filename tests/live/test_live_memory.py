"""GPT-Live transcripts into the conversation memory, without a network: the Live conversation and
the shared Continuity and History, driven by the events and the speaking detector a Live call
gives them, and the create request each new session would send."""

from __future__ import annotations

import json
from typing import Any

from openai.types.live.live_create_params import LiveCreateParams
from pydantic import TypeAdapter

from rtedge.live import events as lev
from rtedge.live.conversation import LiveConversation
from rtedge.live.memory import LiveMemory
from rtedge.live.signaling import build_session
from rtedge.live.usage import LiveUsage
from rtedge.peer.live_http import validate_create
from rtedge.realtime.continuity import Continuity
from rtedge.realtime.history import LIVE_PREAMBLE, History
from rtedge.settings import RealtimeSettings
from rtedge.state import State, Turn
from tests.live.test_live_units import Audio


class Rig:
    def __init__(self) -> None:
        self.state = State(provider="live")
        self.continuity = Continuity(self.state, History())
        self.memory = LiveMemory(self.continuity, self.state)
        self.conv = LiveConversation(
            self.state, Audio(), LiveUsage(), on_reply_end=self.memory.reply_ended
        )
        self.conv.attach(lambda e: True)

    def event(self, etype: str, delta: str) -> None:
        event = lev.decode_live_event(
            json.dumps({"type": etype, "delta": delta, "start_ms": 0, "end_ms": 1})
        )
        self.memory.on_event(event)  # as the app routes them: memory, then conversation
        self.conv.on_event(event)

    def heard(self, *words: str) -> None:
        for w in words:
            self.event("session.input_transcript.delta", w)

    def said(self, *words: str) -> None:
        for w in words:
            self.event("session.output_transcript.delta", w)

    def turn(self, user: list[str], reply: list[str]) -> None:
        self.conv.press()
        self.conv.release()
        self.heard(*user)
        self.conv.on_voice(True)
        self.said(*reply)
        self.conv.on_voice(False)

    def entries(self) -> list[tuple[str, str]]:
        return [(e.role, e.text) for e in self.continuity.history.entries()]


def test_a_turn_is_one_user_and_one_assistant_message() -> None:
    rig = Rig()
    rig.turn(["Dim the", " lamp"], ["Sure", ",", " dimmed."])
    assert rig.state.turn is Turn.IDLE
    assert rig.entries() == [("user", "Dim the lamp"), ("assistant", "Sure, dimmed.")]
    rig.turn(["And the fan?"], ["Fan off."])
    assert [r for r, _ in rig.entries()] == ["user", "assistant", "user", "assistant"]


def test_a_reply_the_model_starts_by_itself_is_recorded_once() -> None:
    rig = Rig()
    rig.turn(["Hi"], ["Hello."])
    rig.conv.on_voice(True)  # the model speaks again by itself (no press): a reply of its own
    rig.said("Anything else?")
    rig.conv.on_voice(False)
    assert rig.entries() == [
        ("user", "Hi"),
        ("assistant", "Hello."),
        ("assistant", "Anything else?"),
    ]


def test_a_late_transcription_goes_before_its_reply() -> None:
    rig = Rig()
    rig.conv.press()
    rig.conv.release()
    rig.conv.on_voice(True)
    rig.said("It is noon.")
    rig.conv.on_voice(False)
    rig.heard("What time is it?")  # the transcription lands after the reply ended
    rig.memory.reply_ended()  # the next reply's end (or anything) must not lose it
    assert rig.entries() == [("user", "What time is it?"), ("assistant", "It is noon.")]


def test_a_reply_cut_by_a_press_is_kept_as_far_as_it_got() -> None:
    rig = Rig()
    rig.conv.press()
    rig.conv.release()
    rig.heard("Tell me a story")
    rig.conv.on_voice(True)
    rig.said("Once upon", " a time")
    rig.conv.press()  # barge-in
    assert rig.entries() == [("user", "Tell me a story"), ("assistant", "Once upon a time")]
    rig.conv.release()
    rig.heard("Stop")
    rig.conv.on_voice(True)
    rig.said("Stopped.")
    rig.conv.on_voice(False)
    assert rig.entries()[-2:] == [("user", "Stop"), ("assistant", "Stopped.")]


def test_a_turn_in_progress_when_the_call_drops_is_not_carried_over() -> None:
    rig = Rig()
    rig.turn(["One"], ["First."])
    rig.conv.press()
    rig.conv.release()
    rig.heard("Two")
    rig.conv.on_voice(True)
    rig.said("Secon")  # the reply has begun when the call drops
    rig.conv.detach()
    rig.memory.call_ended()  # the supervisor, as for the Realtime seeder
    rig.conv.attach(lambda e: True)
    rig.turn(["Three"], ["Third."])
    assert rig.entries() == [
        ("user", "One"),
        ("assistant", "First."),
        ("user", "Three"),
        ("assistant", "Third."),
    ]


def test_a_word_of_a_turn_left_open_is_dropped_by_the_next_press() -> None:
    rig = Rig()
    rig.conv.press()
    rig.conv.release()
    rig.heard("Never answered")
    rig.turn(["Answered"], ["Yes."])
    assert rig.entries() == [("user", "Answered"), ("assistant", "Yes.")]


def test_forgetting_empties_the_next_session_input() -> None:
    rig = Rig()
    rig.turn(["Hi"], ["Hello."])
    assert rig.memory.session_input()
    rig.conv.press()
    rig.heard("half a question")
    rig.continuity.forget("reset")  # mid-turn: its reply comes after the forgetting
    rig.conv.release()
    rig.conv.on_voice(True)
    rig.said("An answer to a forgotten question.")
    rig.conv.on_voice(False)
    assert rig.memory.session_input() == [] and rig.entries() == []
    rt = RealtimeSettings(provider="live", api_key="k")
    assert "input" not in build_session(rt, rig.memory.session_input())


def test_a_long_press_forgets_and_the_reply_to_the_held_audio_is_not_kept() -> None:
    rig = Rig()
    rig.turn(["Hi"], ["Hello."])
    rig.conv.press()  # held long: the app abandons the turn and forgets (app._long_press)
    rig.conv.abandon()
    rig.continuity.forget("long press")
    rig.heard("held audio")  # the service heard the held button all the same
    rig.conv.release()
    rig.conv.on_voice(True)
    rig.said("An answer.")
    rig.conv.on_voice(False)
    assert rig.entries() == [] and rig.memory.session_input() == []
    rig.turn(["Next visitor"], ["Welcome."])
    assert rig.entries() == [("user", "Next visitor"), ("assistant", "Welcome.")]


def test_seed_sends_nothing_and_marks_the_history() -> None:
    rig = Rig()
    rig.turn(["Hi"], ["Hello."])
    sent: list[Any] = []

    def send(event: dict[str, object]) -> bool:
        sent.append(event)
        return True

    mark = rig.memory.seed(send)
    assert sent == [] and mark == rig.continuity.mark()
    assert rig.continuity.seeded_calls == 1
    assert not rig.memory.catch_up(lambda e: True, mark)


def test_every_create_request_with_history_validates() -> None:
    rig = Rig()
    for i in range(3):
        rig.turn([f"Question {i}"], [f"Answer {i}."])
    rt = RealtimeSettings(
        provider="live", api_key="k", voice="cedar", instructions="You are a kiosk in a shop."
    )
    session = build_session(rt, rig.memory.session_input())
    assert session["instructions"] == "You are a kiosk in a shop."  # kept as configured
    items = session["input"]
    assert [i["role"] for i in items] == ["developer"] + ["user", "assistant"] * 3
    assert items[0]["content"][0]["text"] == LIVE_PREAMBLE
    assert items[-1]["content"] == [{"type": "output_text", "text": "Answer 2."}]
    body = {"session": session, "transport": {"type": "webrtc", "sdp": "v=0"}}
    TypeAdapter(LiveCreateParams).validate_python(body)  # the SDK's own shape
    validate_create(body)  # strict: no field the SDK's create params lack
