"""Hands-free turns on the loop: what each gate event sends to the service, with a real
AudioPipeline (threads not started) and a real Conversation whose data channel is a list, on
synthetic time (its commit waits pass at once)."""

from __future__ import annotations

from typing import Any

import pytest

pytest.importorskip("pymicro_wakeword")

from rtedge.audio.handsfree_gate import GateEvent  # noqa: E402
from rtedge.audio.pipeline import AudioPipeline  # noqa: E402
from rtedge.controls.handsfree import HandsFree  # noqa: E402
from rtedge.realtime.conversation import COMMIT_ACK_S, COMMIT_DELAY_S, Conversation  # noqa: E402
from rtedge.settings import AudioSettings  # noqa: E402
from rtedge.settings_handsfree import WakeSettings  # noqa: E402
from rtedge.state import State, Turn  # noqa: E402
from rtedge.timers import ManualTimers  # noqa: E402
from tests.realtime.test_conversation import RESPONSE, advance, feed  # noqa: E402


def setup(
    *, service_vad: bool = False, **wake: Any
) -> tuple[HandsFree, Conversation, State, AudioPipeline, list[str]]:
    state = State()
    settings = WakeSettings(enabled=True, model="hey_jarvis", **wake)
    audio = AudioPipeline(AudioSettings(echo_cancel=True), state, wake=settings)
    conv = Conversation(state, audio, hands_free=service_vad, timers=ManualTimers())
    audio.talking = False
    sent: list[str] = []
    conv.attach(lambda e: sent.append(e["type"]) or True)
    sent.clear()
    return (
        HandsFree(settings, audio, conv, state, service_vad=service_vad),
        conv,
        state,
        audio,
        sent,
    )


async def test_wake_then_end_sends_the_turn_without_opening_the_button_gate() -> None:
    hf, conv, state, audio, sent = setup()
    hf.on_gate_event(GateEvent.WAKE)
    assert state.turn is Turn.LISTENING
    assert audio.talking is False  # the capture thread's gate holds the mic, not the button's
    assert sent == ["input_audio_buffer.clear"]
    hf.on_gate_event(GateEvent.END)
    assert state.turn is Turn.THINKING
    advance(conv, COMMIT_DELAY_S + COMMIT_ACK_S)
    assert sent[1:] == ["input_audio_buffer.commit", "response.create"]
    assert state.snapshot()["hands_free"]["wake_detections"] == 0  # counted on the thread


async def test_false_wake_is_dropped_unsent() -> None:
    hf, conv, state, audio, sent = setup()
    hf.on_gate_event(GateEvent.WAKE)
    hf.on_gate_event(GateEvent.FALSE_WAKE)
    advance(conv, COMMIT_DELAY_S)
    assert state.turn is Turn.IDLE
    assert "input_audio_buffer.commit" not in sent and "response.create" not in sent
    assert sent.count("input_audio_buffer.clear") == 2


async def test_wake_over_a_reply_barges_in_as_a_press() -> None:
    hf, conv, state, audio, sent = setup()
    flushes: list[int] = []
    audio.flush = lambda: flushes.append(1)  # type: ignore[method-assign]
    feed(conv, {"type": "response.created", "response": RESPONSE})
    conv.on_voice(True)
    assert state.turn is Turn.SPEAKING
    assert hf.gate.assistant_speaking
    hf.on_gate_event(GateEvent.WAKE)
    assert "response.cancel" in sent and "output_audio_buffer.clear" in sent
    assert flushes and hf.barge_ins == 1
    assert state.turn is Turn.LISTENING


async def test_follow_up_window_opens_after_the_reply_is_heard() -> None:
    hf, conv, state, audio, sent = setup(follow_up_s=4.0)
    hf.on_gate_event(GateEvent.WAKE)
    hf.on_gate_event(GateEvent.END)
    conv.on_voice(True)
    assert hf.gate.answering and hf.gate.follow_up_request is None
    conv.on_voice(False)
    assert state.turn is Turn.IDLE
    assert hf.gate.follow_up_request == 4.0


async def test_the_button_suspends_the_gate_and_service_vad_is_not_committed() -> None:
    hf, conv, state, audio, sent = setup(service_vad=True)
    hf.press()
    assert hf.gate.suspended and audio.talking and state.turn is Turn.LISTENING
    hf.on_gate_event(GateEvent.WAKE)  # ignored while the button is held
    hf.release()
    assert not hf.gate.suspended and not audio.talking
    hf.on_gate_event(GateEvent.WAKE)
    hf.on_gate_event(GateEvent.END)
    advance(conv, COMMIT_DELAY_S)
    assert "input_audio_buffer.commit" not in sent  # the service's VAD commits
    assert state.turn is Turn.THINKING


def test_metrics_carry_the_front_end_figures() -> None:
    from prometheus_client import CollectorRegistry, generate_latest

    from rtedge.controls.handsfree_metrics import FrontendCollector

    hf, conv, state, audio, sent = setup()
    front = audio.frontend
    assert front is not None and front.canceller is not None
    front.stats.wakes, front.stats.false_wakes, front.stats.cpu_s = 3, 1, 0.25
    front.canceller.erle_db, front.canceller.delay_ms = 35.5, 62.0
    hf.barge_ins = 2
    registry = CollectorRegistry()
    registry.register(FrontendCollector(front, hf))
    text = generate_latest(registry).decode()
    for line in (
        "rtedge_wake_detections_total 3.0",
        "rtedge_false_wakes_total 1.0",
        "rtedge_voice_barge_ins_total 2.0",
        "rtedge_echo_erle_db 35.5",
        "rtedge_echo_delay_ms 62.0",
        "rtedge_audio_frontend_cpu_seconds_total 0.25",
    ):
        assert line in text, line
    hf._publish()
    assert state.snapshot()["hands_free"]["false_wakes"] == 1
