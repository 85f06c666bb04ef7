"""Caption pacing and the state indicator, on an injected clock: the assistant's words appear as
the speaker plays voice (not when the text arrives), a barge-in keeps only what was heard, the
quiet period clears the screen, and the indicator says what the LED shows."""

from __future__ import annotations

import pytest

from rtedge.controls.leds import pattern_for
from rtedge.display.captions import (
    CaptionPacer,
    Indicator,
    indicator_for,
    reveal_upto,
    spoken_weight,
)
from rtedge.state import Connection, State, Turn
from rtedge.timers import ManualTimers


def connected() -> State:
    return State(connection=Connection.CONNECTED)


def pacer(clock: ManualTimers, cps: float | None = 10.0, clear: float = 5.0) -> CaptionPacer:
    return CaptionPacer(pace_cps=cps, clear_after_s=clear, clock=clock)


def test_spoken_weight_and_reveal_by_half_words() -> None:
    assert spoken_weight("Hello, world!") == 10
    assert spoken_weight("at 7") == 2 + 3
    text = "one two three"
    assert reveal_upto(text, 0) == 0
    assert reveal_upto(text, 1.4) == 0
    assert text[: reveal_upto(text, 1.5)] == "one"  # half of "one" said
    assert text[: reveal_upto(text, 4.5)] == "one two"
    assert reveal_upto(text, 100) == len(text)


def test_reply_text_waits_for_the_voice_and_follows_it() -> None:
    clock, state = ManualTimers(0.0), connected()
    p = pacer(clock)
    state.turn = Turn.LISTENING
    p.update(state, 0.0, False)
    state.transcript_user = "what is up"
    state.turn = Turn.THINKING
    # The whole reply arrives before a sound is played (as from OpenAI, or the peer's lead).
    state.transcript_assistant = "alpha beta gamma delta"
    view = p.update(state, 0.5, False)
    assert view.user == "what is up"
    assert view.assistant == ""
    # Silence does not advance it, however long.
    assert p.update(state, 3.0, False).assistant == ""
    state.turn = Turn.SPEAKING
    assert p.update(state, 3.0, True).assistant == ""
    assert p.update(state, 3.3, True).assistant == "alpha"  # 3 letters: half of alpha said
    assert p.update(state, 3.65, True).assistant == "alpha"  # 6.5 letters: beta half-said at 7
    assert p.update(state, 3.75, True).assistant == "alpha beta"
    # a pause between words: nothing more
    assert p.update(state, 4.6, False).assistant == "alpha beta"
    assert p.update(state, 4.9, True).assistant == "alpha beta"  # 10.5 letters
    assert p.update(state, 5.1, True).assistant == "alpha beta gamma"  # 12.5 (gamma: 11.5)
    state.turn = Turn.IDLE  # the reply is over: all of it
    assert p.update(state, 5.0, False).assistant == "alpha beta gamma delta"


def test_barge_in_keeps_only_what_was_heard_then_a_new_exchange_starts_clean() -> None:
    clock, state = ManualTimers(0.0), connected()
    p = pacer(clock)
    state.turn = Turn.SPEAKING
    state.transcript_assistant = "first reply that goes on and on"
    p.update(state, 0.0, True)
    heard = p.update(state, 0.8, True).assistant
    assert heard == "first reply"
    state.turn = Turn.LISTENING  # the user pressed to talk over it
    view = p.update(state, 0.7, False)
    assert view.assistant == "" and view.user == ""  # a new exchange: the old one is gone
    state.turn = Turn.THINKING
    state.transcript_user = "stop"
    assert p.update(state, 2.0, True).user == "stop"
    state.transcript_assistant = "okay"
    state.turn = Turn.IDLE
    view = p.update(state, 2.1, False)
    assert (view.user, view.assistant) == ("stop", "okay")


def test_unpaced_shows_text_as_it_arrives_and_clears_after_quiet() -> None:
    clock, state = ManualTimers(0.0), connected()
    p = pacer(clock, cps=None, clear=5.0)
    state.turn = Turn.THINKING
    state.transcript_assistant = "Hello"
    assert p.update(state).assistant == "Hello"
    state.transcript_assistant = "Hello there"
    assert p.update(state).assistant == "Hello there"
    state.turn = Turn.IDLE
    assert p.update(state).assistant == "Hello there"
    clock.now = 4.9
    assert p.update(state).assistant == "Hello there"
    clock.now = 5.0
    view = p.update(state)
    assert view.empty
    # the cleared text stays cleared; only new words come back
    clock.now = 20
    assert p.update(state).empty
    state.transcript_user = "again"
    assert p.update(state).user == "again"


def test_a_new_reply_replaces_the_old_one() -> None:
    clock, state = ManualTimers(0.0), connected()
    p = pacer(clock, cps=None)
    state.transcript_assistant = "one long answer"
    assert p.update(state).assistant == "one long answer"
    state.turn = Turn.THINKING
    state.transcript_assistant = "Two"
    assert p.update(state).assistant == "Two"


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"connection": Connection.CONNECTED}, Indicator("idle")),
        ({"connection": Connection.CONNECTED, "ptt_held": True}, Indicator("listening")),
        ({"connection": Connection.CONNECTED, "turn": Turn.THINKING}, Indicator("thinking")),
        ({"connection": Connection.CONNECTED, "turn": Turn.SPEAKING}, Indicator("speaking")),
        ({"connection": Connection.STARTING}, Indicator("offline", "starting")),
        (
            {"connection": Connection.AUTH_FAILED, "last_error": "401 from service"},
            Indicator("offline", "auth_failed (401 from service)"),
        ),
        ({"connection": Connection.STOPPING}, Indicator("offline", "stopping")),
    ],
)
def test_indicator_matches_the_led(changes: dict[str, object], expected: Indicator) -> None:
    state = State()
    for key, value in changes.items():
        setattr(state, key, value)
    got = indicator_for(state)
    assert got == expected
    led = pattern_for(state)
    assert got.name == led or (got.name == "offline" and led in ("connecting", "error", "off"))


def test_indicator_names_a_missing_microphone() -> None:
    state = connected()
    state.set_device("capture", False, "no such device")
    got = indicator_for(state)
    assert got.name == "offline" and "capture unavailable: no such device" in got.label


def test_a_long_reply_whose_window_slides_keeps_its_place() -> None:
    # The conversation keeps the last 500 characters: past that, each delta drops the start.
    clock, state = ManualTimers(0.0), connected()
    p = pacer(clock, cps=10.0)
    words = [f"w{i:03d}" for i in range(200)]  # 4 letters each (digits count 3: w=1, 3x3=9)
    state.turn = Turn.SPEAKING
    full = ""
    shown: list[str] = []
    audio = 0.0
    for word in words:
        full += word + " "
        state.transcript_assistant = full[-500:]
        audio += 1.0  # one second of voice per word: 10 letters, each word weighs 10
        shown.append(p.update(state, audio, True).assistant)
    # Once the window slides, the caption stays put in the text instead of starting over.
    last = shown[-1].split()
    assert last and last[-1] in (words[-1], words[-2])
    assert all(s for s in shown[5:])
