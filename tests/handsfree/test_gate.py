"""The hands-free gate on audio time: one step per 20 ms period, no clock."""

from __future__ import annotations

from rtedge.audio.handsfree_gate import ONSET_PERIODS, GateConfig, GateEvent, WakeGate

P = 0.02


def gate(**kw: object) -> WakeGate:
    cfg: dict[str, object] = {"period_s": P, "end_silence_s": 0.6, "no_speech_s": 2.0}
    cfg.update(max_turn_s=10.0, barge_in_speech=False)
    cfg.update(kw)
    return WakeGate(GateConfig(**cfg))  # type: ignore[arg-type]


def run(g: WakeGate, seconds: float, *, voice: bool = False) -> list[GateEvent]:
    events = []
    for _ in range(round(seconds / P)):
        e = g.step(False, voice)
        if e is not None:
            events.append(e)
    return events


def test_closed_until_the_wake_word_even_with_speech() -> None:
    g = gate()
    assert run(g, 5.0, voice=True) == []
    assert not g.open
    assert g.step(True, True) is GateEvent.WAKE
    assert g.open


def test_turn_ends_after_speech_then_silence() -> None:
    g = gate()
    g.step(True, False)
    assert run(g, 1.5, voice=True) == []
    assert g.open
    assert run(g, 0.58) == []
    assert run(g, 0.04) == [GateEvent.END]
    assert not g.open


def test_the_wake_words_own_tail_is_not_speech() -> None:
    g = gate()
    g.step(True, True)
    for _ in range(ONSET_PERIODS - 1):  # a short voiced tail, then nothing
        assert g.step(False, True) is None
    events = run(g, 2.0)
    assert events == [GateEvent.FALSE_WAKE]


def test_false_wake_when_nobody_speaks() -> None:
    g = gate(no_speech_s=1.0)
    g.step(True, False)
    assert run(g, 0.98) == []
    assert run(g, 0.02) == [GateEvent.FALSE_WAKE]
    assert not g.open


def test_a_long_talk_is_capped() -> None:
    g = gate(max_turn_s=3.0)
    g.step(True, False)
    assert run(g, 3.0, voice=True) == [GateEvent.CAPPED]


def test_follow_up_window_opens_on_speech_then_expires() -> None:
    g = gate()
    g.follow_up_request = 1.0
    assert run(g, 0.5) == []
    events = run(g, 0.2, voice=True)
    assert events == [GateEvent.SPEECH]
    assert g.open
    g = gate()
    g.follow_up_request = 1.0
    assert run(g, 1.2) == []
    assert run(g, 1.0, voice=True) == []  # too late: the wake word is needed again
    assert not g.open


def test_speech_barges_in_only_when_configured_and_answering() -> None:
    g = gate()
    g.assistant_speaking = g.answering = True
    assert run(g, 1.0, voice=True) == []
    g = gate(barge_in_speech=True)
    g.assistant_speaking = True
    assert run(g, 1.0, voice=True) == []  # a reply to a button turn: not ours to cut
    g.answering = True
    assert run(g, 0.1, voice=True) == [GateEvent.SPEECH]


def test_the_wake_word_barges_in_always() -> None:
    g = gate()
    g.assistant_speaking = True
    assert g.step(True, False) is GateEvent.WAKE


def test_button_suspends_and_closes() -> None:
    g = gate()
    g.step(True, False)
    g.suspended = True
    assert g.step(False, True) is None
    assert not g.open
    assert g.step(True, True) is None
    g.suspended = False
    assert g.step(True, False) is GateEvent.WAKE
