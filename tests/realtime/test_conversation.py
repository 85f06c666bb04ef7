"""Turn logic on its own: the events a press and a release send, and how server events move the
turn. The data channel is the ``send`` seam; the e2e tests cover the same with real calls.
Time is synthetic (rtedge.timers.ManualTimers): the commit delay and the ack wait pass at once."""

from __future__ import annotations

import json
from typing import Any, Literal

from rtedge.protocol.server import decode_server_event
from rtedge.realtime.conversation import COMMIT_ACK_S, COMMIT_DELAY_S, Conversation
from rtedge.state import State, Turn
from rtedge.timers import ManualTimers


class Audio:
    def __init__(self) -> None:
        self.talking = False
        self.flushes = 0
        self.earcons: list[str] = []

    def flush(self) -> None:
        self.flushes += 1

    def earcon(self, name: Literal["press", "release"]) -> None:
        self.earcons.append(name)


def advance(conv: Conversation, seconds: float) -> None:
    """Synthetic time passes: the timers that fall due run, in order."""
    timers = conv.timers
    assert isinstance(timers, ManualTimers)
    timers.advance(seconds)


def feed(conv: Conversation, event: dict[str, Any]) -> None:
    event.setdefault("event_id", "event_1")
    conv.on_event(decode_server_event(json.dumps(event)))


def setup() -> tuple[Conversation, State, Audio, list[dict[str, Any]]]:
    state = State()
    audio = Audio()
    sent: list[dict[str, Any]] = []
    conv = Conversation(state, audio, timers=ManualTimers())
    conv.attach(lambda e: sent.append(e) or True)
    return conv, state, audio, sent


RESPONSE = {"id": "resp_1", "object": "realtime.response", "status": "in_progress", "output": []}


async def turn_sent(conv: Conversation, sent: list[dict[str, Any]]) -> None:
    """One press and release, its commit and response.create gone out; ``sent`` emptied."""
    conv.press()
    conv.release()
    advance(conv, COMMIT_DELAY_S)
    feed(conv, {"type": "input_audio_buffer.committed", "item_id": "item_1"})  # the ack
    assert [e["type"] for e in sent][-1] == "response.create"
    sent.clear()


async def test_press_release_sends_the_ptt_recipe() -> None:
    conv, state, audio, sent = setup()
    conv.press()
    assert audio.talking and state.turn is Turn.LISTENING
    assert [e["type"] for e in sent] == ["input_audio_buffer.clear"]
    conv.release()
    assert not audio.talking and state.turn is Turn.THINKING
    advance(conv, COMMIT_DELAY_S)
    assert [e["type"] for e in sent][1:] == ["input_audio_buffer.commit"]
    feed(conv, {"type": "input_audio_buffer.committed", "item_id": "item_1"})
    assert [e["type"] for e in sent][1:] == ["input_audio_buffer.commit", "response.create"]
    assert len({e["event_id"] for e in sent}) == len(sent)  # every event carries its own id


async def test_barge_in_cancels_clears_and_flushes() -> None:
    conv, state, audio, sent = setup()
    await turn_sent(conv, sent)
    flushes = audio.flushes
    feed(conv, {"type": "response.created", "response": RESPONSE})
    feed(conv, {"type": "output_audio_buffer.started", "response_id": "resp_1"})
    assert state.turn is Turn.SPEAKING
    conv.press()
    assert [e["type"] for e in sent] == [
        "input_audio_buffer.clear",
        "response.cancel",
        "output_audio_buffer.clear",
    ]
    assert audio.flushes == flushes + 1 and state.turn is Turn.LISTENING


async def test_tool_call_is_answered_then_response_created_after_done() -> None:
    conv, state, audio, sent = setup()
    await turn_sent(conv, sent)
    feed(conv, {"type": "response.created", "response": RESPONSE})
    feed(
        conv,
        {
            "type": "response.function_call_arguments.done",
            "response_id": "resp_1",
            "item_id": "item_1",
            "output_index": 0,
            "call_id": "call_9",
            "name": "get_weather",
            "arguments": "{}",
        },
    )
    assert sent[-1]["type"] == "conversation.item.create"
    assert sent[-1]["item"]["call_id"] == "call_9"
    assert "error" in json.loads(sent[-1]["item"]["output"])
    feed(conv, {"type": "response.done", "response": {**RESPONSE, "status": "completed"}})
    assert sent[-1]["type"] == "response.create"  # only after the first response is done


async def test_held_button_across_reconnect_restarts_the_turn() -> None:
    conv, state, audio, sent = setup()
    conv.press()
    conv.detach()
    assert state.turn is Turn.LISTENING
    new: list[dict[str, Any]] = []
    conv.attach(lambda e: new.append(e) or True)
    assert [e["type"] for e in new] == ["input_audio_buffer.clear"]
    conv.release()
    advance(conv, COMMIT_DELAY_S + COMMIT_ACK_S)  # a service that never acks
    assert [e["type"] for e in new][1:] == ["input_audio_buffer.commit", "response.create"]


async def test_empty_commit_error_returns_to_idle_and_unknown_is_counted() -> None:
    conv, state, audio, sent = setup()
    conv.press()
    conv.release()
    feed(
        conv,
        {
            "type": "error",
            "error": {
                "type": "invalid_request_error",
                "code": "input_audio_buffer_commit_empty",
                "message": "buffer too small",
            },
        },
    )
    assert state.turn is Turn.IDLE
    assert state.events_bad["error:input_audio_buffer_commit_empty"] == 1
    feed(conv, {"type": "response.future_thing", "x": 1})
    assert state.events_bad["unknown_type"] == 1


async def test_speech_the_services_vad_took_while_held_still_gets_its_reply() -> None:
    # A service with its own VAD (the minimal profile) commits and answers when the user pauses
    # with the button still down; that reply is cancelled (the user may go on), so on release
    # our commit finds the buffer empty: the speech is in the conversation and is answered.
    conv, state, audio, sent = setup()
    conv.press()
    feed(conv, {"type": "input_audio_buffer.committed", "item_id": "item_1"})
    feed(conv, {"type": "response.created", "response": RESPONSE})
    assert "response.cancel" in [e["type"] for e in sent]  # not asked for: button held
    conv.release()
    advance(conv, COMMIT_DELAY_S)
    commit = sent[-1]
    assert commit["type"] == "input_audio_buffer.commit"
    error = {"type": "invalid_request_error", "code": "input_audio_buffer_commit_empty"}
    feed(conv, {"type": "error", "error": {**error, "event_id": commit["event_id"]}})
    assert sent[-1]["type"] == "response.create"
    assert state.turn is Turn.THINKING
    # a press with nothing committed by the service stays as before: no reply asked for
    conv.press()
    conv.release()
    advance(conv, COMMIT_DELAY_S)
    commit = sent[-1]
    feed(conv, {"type": "error", "error": {**error, "event_id": commit["event_id"]}})
    assert sent[-1] is commit and state.turn is Turn.IDLE


def test_unknown_event_types_share_one_counter() -> None:
    conv, state, _, _ = setup()
    for i in range(500):
        feed(conv, {"type": f"made.up.{i}"})
    feed(conv, {"type": "response.created", "response": {"id": "r1"}})
    assert state.events_in == {"unknown": 500, "response.created": 1}
    assert state.events_bad["unknown_type"] == 500


def created(rid: str) -> dict[str, Any]:
    return {"type": "response.created", "response": {**RESPONSE, "id": rid}}


def done(rid: str) -> dict[str, Any]:
    return {"type": "response.done", "response": {**RESPONSE, "id": rid, "status": "completed"}}


async def test_turn_follows_the_voice_at_the_speaker_without_speaking_events() -> None:
    """A service that sends no output_audio_buffer.* (GPT-Live, minimal servers): the detector's
    voice drives thinking -> speaking -> idle, even after an early response.done."""
    conv, state, audio, sent = setup()
    seen: list[Turn] = []

    def note(st: State) -> None:
        if not seen or seen[-1] is not st.turn:
            seen.append(st.turn)

    state.subscribe(note)
    await turn_sent(conv, sent)
    feed(conv, created("resp_1"))
    assert state.turn is Turn.THINKING
    conv.on_voice(True)
    feed(conv, done("resp_1"))  # generated faster than real time: still audible
    assert state.turn is Turn.SPEAKING and not conv.quiet
    conv.on_voice(False)
    assert state.turn is Turn.IDLE and conv.quiet
    assert seen == [Turn.IDLE, Turn.LISTENING, Turn.THINKING, Turn.SPEAKING, Turn.IDLE]


async def test_barge_in_on_voice_alone_cuts_what_is_audible() -> None:
    """Early response.done, no speaking events: a press while voice plays still cancels and
    clears the service's buffer and flushes ours; "nothing to cancel" is ignored quietly."""
    conv, state, audio, sent = setup()
    await turn_sent(conv, sent)
    feed(conv, created("resp_1"))
    conv.on_voice(True)
    feed(conv, done("resp_1"))
    flushes = audio.flushes
    conv.press()
    types = [e["type"] for e in sent]
    assert types == ["input_audio_buffer.clear", "response.cancel", "output_audio_buffer.clear"]
    assert audio.flushes == flushes + 1 and state.turn is Turn.LISTENING
    for event in sent:  # the service rejects all three
        feed(
            conv,
            {
                "type": "error",
                "error": {
                    "type": "invalid_request_error",
                    "code": "x",
                    "message": "no",
                    "event_id": event["event_id"],
                },
            },
        )
    feed(
        conv,
        {
            "type": "error",
            "error": {
                "type": "invalid_request_error",
                "code": "response_cancel_not_active",
                "message": "n",
            },
        },
    )
    assert not any(k.startswith("error") for k in state.events_bad), state.events_bad


async def test_service_vad_reply_after_ours_is_cancelled_one_reply_per_press() -> None:
    conv, state, audio, sent = setup()
    await turn_sent(conv, sent)
    feed(conv, created("resp_ours"))
    conv.on_voice(True)
    feed(conv, done("resp_ours"))
    feed(conv, created("resp_vad"))  # the service's own VAD, after ours: not asked for
    assert sent == [
        {"type": "response.cancel", "response_id": "resp_vad", "event_id": sent[0]["event_id"]}
    ]  # ours still audible: cancelled by id, our reply's audio is not cleared
    assert state.turn is Turn.SPEAKING
    feed(conv, done("resp_vad"))
    conv.on_voice(False)
    assert state.turn is Turn.IDLE and conv.turns_completed == 1
    # a stale reply to nothing once ours has finished: cancelled and its audio cleared
    flushes = audio.flushes
    feed(conv, created("resp_stale"))
    assert [e["type"] for e in sent][1:] == ["response.cancel", "output_audio_buffer.clear"]
    assert audio.flushes == flushes + 1 and state.turn is Turn.IDLE


async def test_service_vad_reply_while_held_is_cancelled_and_before_commit_is_taken() -> None:
    conv, state, audio, sent = setup()
    conv.press()
    sent.clear()
    feed(conv, created("resp_half"))  # the user paused mid-question, button still down
    assert [e["type"] for e in sent] == ["response.cancel", "output_audio_buffer.clear"]
    assert state.turn is Turn.LISTENING
    sent.clear()
    conv.release()
    feed(conv, created("resp_vad"))  # answered before our commit went out: that is the reply
    advance(conv, COMMIT_DELAY_S)
    assert sent == []  # no commit, no second response.create
    assert conv.response_id == "resp_vad" and state.turn is Turn.THINKING


async def test_words_of_a_cancelled_or_superseded_reply_stay_off_the_transcript() -> None:
    """The minimal profile's own VAD and our commit each start a reply: the caption and
    /status show the words of the reply that plays, not the two interleaved."""
    conv, state, _, sent = setup()
    await turn_sent(conv, sent)
    feed(conv, created("resp_ours"))
    feed(conv, delta("resp_ours", "Welcome to "))
    conv.on_voice(True)
    feed(conv, created("resp_vad"))  # cancelled as not asked for
    feed(conv, delta("resp_vad", "Hello there. "))
    feed(conv, delta("resp_ours", "the kiosk."))
    feed(conv, delta("resp_other", "stray"))  # an id that is neither
    assert state.transcript_assistant == "Welcome to the kiosk."


def delta(rid: str, text: str) -> dict[str, Any]:
    return {
        "type": "response.output_audio_transcript.delta",
        "response_id": rid,
        "item_id": "item_x",
        "output_index": 0,
        "content_index": 0,
        "delta": text,
    }


def test_commit_delay_and_ack_wait_on_the_injected_clock() -> None:
    """The commit goes out COMMIT_DELAY_S after the release, not before; without an ack,
    response.create follows COMMIT_ACK_S later, not before (to the millisecond); turn_since is
    on the same clock."""
    conv, state, _, sent = setup()
    timers = conv.timers
    assert isinstance(timers, ManualTimers)
    conv.press()
    conv.release()
    assert conv.turn_since == timers.now and state.turn is Turn.THINKING
    advance(conv, COMMIT_DELAY_S - 0.001)
    assert [e["type"] for e in sent] == ["input_audio_buffer.clear"]
    advance(conv, 0.002)
    assert sent[-1]["type"] == "input_audio_buffer.commit" and not conv.quiet
    advance(conv, COMMIT_ACK_S - 0.002)
    assert sent[-1]["type"] == "input_audio_buffer.commit"
    advance(conv, 0.002)
    assert sent[-1]["type"] == "response.create"
    assert timers.pending == 0


def test_a_press_before_the_commit_cancels_it() -> None:
    conv, _, _, sent = setup()
    conv.press()
    conv.release()
    advance(conv, COMMIT_DELAY_S / 2)
    conv.press()  # pressed again before the commit went out: one turn, not two
    advance(conv, COMMIT_DELAY_S + COMMIT_ACK_S)
    types = [e["type"] for e in sent]
    assert "input_audio_buffer.commit" not in types and "response.create" not in types
    conv.release()
    advance(conv, COMMIT_DELAY_S + COMMIT_ACK_S)
    assert [e["type"] for e in sent][-2:] == ["input_audio_buffer.commit", "response.create"]
