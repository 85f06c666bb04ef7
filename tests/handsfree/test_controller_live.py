"""Hands-free turns on GPT-Live, on the loop: what each gate event sends to the service (the
input mute) and does to the speaker, with a real AudioPipeline (threads not started) and a
real LiveConversation whose data channel is a list."""

from __future__ import annotations

from typing import Any

import pytest

pytest.importorskip("pymicro_wakeword")

from rtedge.audio.handsfree_gate import GateEvent  # noqa: E402
from rtedge.audio.pipeline import AudioPipeline  # noqa: E402
from rtedge.controls.handsfree import HandsFree  # noqa: E402
from rtedge.controls.handsfree_live import LiveTurns  # noqa: E402
from rtedge.live.conversation import YIELD_HOLDOFF_S, YIELD_QUIET_S, LiveConversation  # noqa: E402
from rtedge.live.usage import LiveUsage  # noqa: E402
from rtedge.settings import AudioSettings  # noqa: E402
from rtedge.settings_handsfree import WakeSettings  # noqa: E402
from rtedge.state import State, Turn  # noqa: E402

MUTE, UNMUTE = "session.input_audio.mute", "session.input_audio.unmute"


def setup(**wake: Any) -> tuple[HandsFree, LiveConversation, State, AudioPipeline, list[str]]:
    state = State(provider="live")
    settings = WakeSettings(enabled=True, model="hey_jarvis", **wake)
    audio = AudioPipeline(AudioSettings(echo_cancel=True), state, wake=settings)
    conv = LiveConversation(state, audio, LiveUsage())
    sent: list[str] = []
    conv.attach(lambda e: sent.append(e["type"]) or True)
    assert sent == [MUTE]  # the call is up and muted while the device waits for the wake word
    sent.clear()
    hf = HandsFree(settings, audio, LiveTurns(conv), state)
    return hf, conv, state, audio, sent


async def test_wake_unmutes_and_the_devices_silence_mutes() -> None:
    hf, conv, state, audio, sent = setup()
    hf.on_gate_event(GateEvent.WAKE)
    assert sent == [UNMUTE] and state.turn is Turn.LISTENING
    assert audio.talking is False  # the capture gate holds the mic, not the button's
    assert not state.ptt_held
    hf.on_gate_event(GateEvent.END)
    assert sent == [UNMUTE, MUTE] and state.turn is Turn.THINKING
    conv.on_voice(True)
    assert state.turn is Turn.SPEAKING
    conv.on_voice(False)
    assert state.turn is Turn.IDLE
    assert hf.gate.follow_up_request == 5.0  # the follow-up window opens after the reply


async def test_a_false_wake_mutes_and_goes_back_to_idle() -> None:
    hf, _, state, _, sent = setup()
    hf.on_gate_event(GateEvent.WAKE)
    hf.on_gate_event(GateEvent.FALSE_WAKE)
    assert sent == [UNMUTE, MUTE] and state.turn is Turn.IDLE


async def test_the_answer_that_starts_before_the_devices_silence_plays_and_ends_the_turn() -> None:
    # Live's model ends the user's turn by its own VAD, often before the device's
    # end_silence_ms: its reply must not be held back as a pressed button's would be, and the
    # microphone closes (else the reply's residual echo goes back to the model)
    hf, conv, state, audio, sent = setup()
    turns = hf.conversation
    assert isinstance(turns, LiveTurns)
    turns.on_answer = hf.answered_during_turn
    hf.gate._begin(GateEvent.WAKE, heard=False)  # the capture thread opened it
    hf.on_gate_event(GateEvent.WAKE)
    assert audio._output_held is False
    conv.on_voice(True)  # the reply is audible while the turn is still open
    assert hf.gate.end_request and sent == [UNMUTE]
    assert hf.gate.step(wake=False, voice=True) is GateEvent.END  # the next capture period
    assert not hf.gate.open
    hf.on_gate_event(GateEvent.END)
    assert sent == [UNMUTE, MUTE] and state.turn is Turn.SPEAKING
    assert not hf.in_turn and audio._output_held is False
    conv.on_voice(False)
    assert state.turn is Turn.IDLE and sent == [UNMUTE, MUTE]


async def test_the_wake_word_over_a_reply_cuts_it_as_a_press_does() -> None:
    hf, conv, state, audio, sent = setup()
    conv.on_voice(True)
    assert state.turn is Turn.SPEAKING
    flushed: list[tuple[float, ...]] = []
    audio.flush = lambda *a: flushed.append(a)  # type: ignore[method-assign]
    hf.on_gate_event(GateEvent.WAKE)
    # the cut reply stays muted until the model yields (a pause between words is no yield)
    assert flushed == [(YIELD_QUIET_S, YIELD_HOLDOFF_S)] and hf.barge_ins == 1
    assert sent == [UNMUTE] and state.turn is Turn.LISTENING


async def test_the_button_over_a_hands_free_turn_takes_the_microphone() -> None:
    hf, conv, state, audio, sent = setup()
    hf.on_gate_event(GateEvent.WAKE)
    hf.press()
    assert hf.gate.suspended and audio.talking is True and state.ptt_held
    assert sent[-1] == UNMUTE and state.turn is Turn.LISTENING
    hf.release()
    assert not hf.gate.suspended and audio.talking is False
    assert sent[-1] == MUTE and state.turn is Turn.THINKING
