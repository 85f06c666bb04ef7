"""Conversation memory from the service's events, seeding, catch-up and forgetting, driven with
real decoded events and an injected clock (no sleeps)."""

from __future__ import annotations

import json
from typing import Any

from rtedge.protocol.server import decode_server_event
from rtedge.realtime.continuity import Continuity
from rtedge.realtime.conversation import COMMIT_DELAY_S, Conversation
from rtedge.realtime.history import History
from rtedge.state import State, Turn
from rtedge.timers import ManualTimers
from tests.protocol.test_client_events import Audio, check


def make(**kw: Any) -> tuple[Continuity, State, ManualTimers]:
    state, clock = State(), ManualTimers(500.0)
    kw.setdefault("clock", clock)
    return Continuity(state, History(clock=clock), **kw), state, clock


def feed(c: Continuity, event: dict[str, Any]) -> None:
    c.on_event(decode_server_event(json.dumps(event)))


def reply(c: Continuity, rid: str, *deltas: str, done: str | None = None) -> None:
    feed(c, {"type": "response.created", "response": {"id": rid}})
    for d in deltas:
        feed(c, {"type": "response.output_audio_transcript.delta", "delta": d})
    if done is not None:
        feed(c, {"type": "response.output_audio_transcript.done", "transcript": done})
    feed(c, {"type": "response.done", "response": {"id": rid, "status": "completed"}})


def collect(into: list[dict[str, Any]]) -> Any:
    def send(event: dict[str, Any]) -> bool:
        into.append(event)
        return True

    return send


def said(c: Continuity) -> list[tuple[str, str]]:
    return [(e.role, e.text) for e in c.history.entries()]


def user(c: Continuity, text: str) -> None:
    feed(
        c,
        {
            "type": "conversation.item.input_audio_transcription.completed",
            "item_id": "item_1",
            "content_index": 0,
            "transcript": text,
        },
    )


def test_turns_recorded_from_the_events() -> None:
    c, state, _ = make()
    state.update(turn=Turn.LISTENING)
    user(c, "what is six times seven")
    reply(c, "r1", "Six times ", "seven is 42.")
    assert said(c) == [("user", "what is six times seven"), ("assistant", "Six times seven is 42.")]


def test_reply_text_from_done_when_no_deltas_came() -> None:
    """A service that sends no deltas (an optional event) still leaves the reply's words."""
    c, state, _ = make()
    state.update(turn=Turn.LISTENING)
    reply(c, "r1", done="Hello there.")
    assert said(c) == [("assistant", "Hello there.")]


def test_replies_nobody_asked_for_are_not_remembered() -> None:
    c, state, _ = make(is_unasked=lambda rid: rid == "stray")
    state.update(turn=Turn.LISTENING)
    user(c, "hi")
    reply(c, "stray", "a reply to nothing")
    reply(c, "r2", "Hello!")
    assert said(c) == [("user", "hi"), ("assistant", "Hello!")]


def test_tool_call_summarised() -> None:
    c, state, _ = make()
    state.update(turn=Turn.LISTENING)
    user(c, "weather in Oslo")
    feed(
        c,
        {
            "type": "response.function_call_arguments.done",
            "call_id": "call_1",
            "name": "get_weather",
            "arguments": "{}",
        },
    )
    reply(c, "r1", "I cannot check that.")
    assert said(c)[1][1].startswith("[tool get_weather: not available on this device]")


def test_turn_in_progress_when_the_call_dropped_is_not_kept() -> None:
    c, state, _ = make()
    state.update(turn=Turn.LISTENING)
    user(c, "first")
    reply(c, "r1", "one")
    state.update(turn=Turn.IDLE)
    state.update(turn=Turn.LISTENING)
    user(c, "cut off")
    feed(c, {"type": "response.created", "response": {"id": "r2"}})
    feed(c, {"type": "response.output_audio_transcript.delta", "delta": "half a rep"})
    c.call_ended()  # the call died here; its response.done never comes
    state.update(turn=Turn.IDLE)
    assert said(c) == [("user", "first"), ("assistant", "one")]
    # nor does the half reply leak into the next one
    state.update(turn=Turn.LISTENING)
    reply(c, "r3", "two")
    assert said(c)[-1] == ("assistant", "two")


def test_seed_sends_valid_items_and_catch_up_sends_the_rest() -> None:
    c, state, _ = make()
    state.update(turn=Turn.LISTENING)
    user(c, "q1")
    reply(c, "r1", "a1")
    sent: list[dict[str, Any]] = []
    mark = c.seed(collect(sent))
    assert [e["item"]["role"] for e in sent] == ["user", "assistant"]
    for event in sent:
        check(event)
    state.update(turn=Turn.IDLE)
    state.update(turn=Turn.LISTENING)
    user(c, "q2")  # said on the old call while the new one waits
    reply(c, "r2", "a2")
    later: list[dict[str, Any]] = []
    assert c.catch_up(collect(later), mark)
    assert [e["item"]["content"][0]["text"] for e in later] == ["q2", "a2"]
    c.forget("reset")
    assert not c.catch_up(lambda e: True, mark)  # seeded before forgetting: not to be used


def test_forget_after_idle_with_an_injected_clock() -> None:
    renewed: list[bool] = []
    c, state, clock = make(forget_after_idle_s=120, on_forget=lambda: renewed.append(True))
    assert not c.idle_due()  # nothing held
    state.update(turn=Turn.LISTENING)
    user(c, "q")
    reply(c, "r1", "a")
    state.update(turn=Turn.IDLE)
    clock.now += 119.9
    assert not c.idle_due()
    clock.now += 0.2
    assert c.idle_due()
    state.update(turn=Turn.LISTENING)  # someone speaks just then: not idle
    assert not c.idle_due()
    state.update(turn=Turn.IDLE)
    clock.now += 120
    assert c.idle_due()
    assert c.forget("idle") and renewed == [True]
    assert len(c.history) == 0 and not c.idle_due()
    summary = c.summary()
    assert summary["items"] == 0 and summary["forgotten"] == 1 and "text" not in summary


def test_idle_forgetting_off_by_default() -> None:
    c, state, clock = make()
    state.update(turn=Turn.LISTENING)
    reply(c, "r1", "a")
    state.update(turn=Turn.IDLE)
    clock.now += 10**6
    assert not c.idle_due()


def test_summary_shows_text_only_when_transcripts_may_be_logged() -> None:
    c, state, _ = make(show_text=True)
    state.update(turn=Turn.LISTENING)
    user(c, "q")
    reply(c, "r1", "a")
    assert c.summary()["text"] == [
        {"role": "user", "text": "q"},
        {"role": "assistant", "text": "a"},
    ]


async def test_long_press_abandons_the_turn_and_forgets() -> None:
    """What the app does on a long press: the press is no turn (input cleared, nothing
    committed, no reply asked for) and the conversation is forgotten."""
    state, clock = State(), ManualTimers(500.0)
    timers = ManualTimers()
    conv = Conversation(state, Audio(), timers=timers)
    renewed: list[bool] = []
    c = Continuity(state, History(clock=clock), on_forget=lambda: renewed.append(True))
    sent: list[dict[str, Any]] = []
    conv.attach(collect(sent))
    conv.press()
    user(c, "q")
    reply(c, "r1", "a")
    conv.abandon()
    c.forget("long press")
    timers.advance(COMMIT_DELAY_S + 1.0)
    types = [e["type"] for e in sent]
    assert "input_audio_buffer.commit" not in types and "response.create" not in types
    assert types[-1] == "input_audio_buffer.clear"
    assert state.turn is Turn.IDLE and not conv.held and not state.ptt_held
    assert len(c.history) == 0 and renewed == [True]
