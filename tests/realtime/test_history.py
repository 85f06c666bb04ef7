"""The in-memory transcript: what is kept, in what order, within which bounds, and the shapes it
gives a new session (Realtime seed items, GPT-Live ``session.input``) checked against the
``openai`` package's own models."""

from __future__ import annotations

from typing import Any

import pytest
from openai.types.live.initial_item import InitialItem
from openai.types.live.media_session_config_param import MediaSessionConfigParam
from pydantic import TypeAdapter

from rtedge.protocol import client
from rtedge.realtime.history import (
    LIVE_MAX_MESSAGES,
    LIVE_MAX_TOKENS,
    LIVE_PREAMBLE,
    MAX_ENTRY_CHARS,
    History,
    estimate_tokens,
)
from rtedge.timers import ManualTimers
from tests.protocol.reference import first_extra
from tests.protocol.test_client_events import check

initial_item = TypeAdapter(InitialItem)
live_session = TypeAdapter(MediaSessionConfigParam)


def turn(h: History, user: str | None, reply: str) -> None:
    h.begin_turn()
    if user is not None:
        h.user(user)
    h.assistant(reply)


def roles_texts(h: History) -> list[tuple[str, str]]:
    return [(e.role, e.text) for e in h.entries()]


def test_finished_turns_kept_in_order() -> None:
    h = History()
    turn(h, "what time is it", "It is ten.")
    turn(h, "and the date", "Monday.")
    assert roles_texts(h) == [
        ("user", "what time is it"),
        ("assistant", "It is ten."),
        ("user", "and the date"),
        ("assistant", "Monday."),
    ]


def test_turn_without_reply_is_not_kept() -> None:
    """A turn in progress when the call dropped is not carried over (nor is one abandoned)."""
    h = History()
    turn(h, "first", "one")
    h.begin_turn()
    h.user("cut off by the drop")
    h.drop_open_turn()
    h.begin_turn()
    h.user("never answered")
    h.begin_turn()  # pressed again before any reply
    h.user("second")
    h.assistant("two")
    assert [t for _, t in roles_texts(h)] == ["first", "one", "second", "two"]


def test_pieces_of_one_turn_are_one_message() -> None:
    h = History()
    h.begin_turn()
    h.user("[1.3 s of audio]")  # a service's own VAD committed, then our commit did
    h.user("[0.2 s of audio]")
    h.assistant("I heard it.")
    assert roles_texts(h) == [
        ("user", "[1.3 s of audio] [0.2 s of audio]"),
        ("assistant", "I heard it."),
    ]


def test_late_transcription_goes_before_its_reply() -> None:
    h = History()
    h.begin_turn()
    h.assistant("Sure.")  # the reply ended before the user's words were transcribed
    h.user("turn on the lamp")
    assert roles_texts(h) == [("user", "turn on the lamp"), ("assistant", "Sure.")]


def test_tool_calls_are_summarised_as_text() -> None:
    h = History()
    h.begin_turn()
    h.user("weather in Oslo")
    h.tool_call("get_weather", "not available on this device")
    h.assistant("I cannot check the weather.")
    assert roles_texts(h)[1] == (
        "assistant",
        "[tool get_weather: not available on this device] I cannot check the weather.",
    )


def test_bounds_drop_the_oldest() -> None:
    h = History(max_items=4, max_chars=10_000)
    for n in range(5):
        turn(h, f"q{n}", f"a{n}")
    assert [t for _, t in roles_texts(h)] == ["q3", "a3", "q4", "a4"]
    assert h.trimmed == 6
    h = History(max_items=100, max_chars=50)
    for _ in range(5):
        turn(h, "x" * 10, "y" * 10)
    assert sum(len(t) for _, t in roles_texts(h)) <= 50
    assert roles_texts(h)[-1] == ("assistant", "y" * 10)
    h = History()
    h.user("z" * 5000)
    h.assistant("w" * 5000)
    assert max(len(t) for _, t in roles_texts(h)) <= MAX_ENTRY_CHARS


def test_summary_has_counts_and_ages_and_text_only_when_asked() -> None:
    clock = ManualTimers(1000.0)
    h = History(clock=clock)
    turn(h, "secret question", "secret answer")
    clock.now += 30
    turn(h, "q", "a")
    clock.now += 5
    plain = h.summary()
    assert plain["items"] == 4 and plain["oldest_age_s"] == 35.0 and plain["newest_age_s"] == 5.0
    assert "secret" not in repr(plain)
    assert h.summary(with_text=True)["text"][0] == {"role": "user", "text": "secret question"}


def test_forget_empties_and_counts() -> None:
    h = History()
    assert not h.forget() and h.forgotten == 0
    turn(h, "q", "a")
    assert h.forget() and len(h) == 0 and h.forgotten == 1
    assert h.realtime_items() == [] and h.live_input() == []


def test_realtime_seed_items_are_valid_client_events() -> None:
    h = History()
    turn(h, "what is two plus two", "Four.")
    turn(h, None, "Are you still there?")
    events = [client.create_item(item) for item in h.realtime_items()]
    assert [e["item"]["role"] for e in events] == ["user", "assistant", "assistant"]
    for event in events:
        check(event)  # the openai models and the peer's strict ones, no undeclared field
    assert events[0]["item"]["content"] == [{"type": "input_text", "text": "what is two plus two"}]
    assert events[1]["item"]["content"] == [{"type": "output_text", "text": "Four."}]
    # only what came after a mark (make-before-break catch-up)
    mark = h.last_seq
    turn(h, "and three", "Five.")
    assert [i["role"] for i in h.realtime_items(after_seq=mark)] == ["user", "assistant"]


def _check_live(items: list[dict[str, Any]]) -> None:
    for item in items:
        model = initial_item.validate_python(item)
        assert first_extra(model) is None, item
        assert len(item["content"]) == 1  # one text part each
    live_session.validate_python({"model": "gpt-live-1", "input": items})


def test_live_input_matches_the_openai_live_types() -> None:
    h = History()
    turn(h, "remind me about the lamp", "You asked me to dim it at ten.")
    items = h.live_input()
    _check_live(items)
    assert [i["role"] for i in items] == ["developer", "user", "assistant"]
    assert items[0]["content"][0]["text"] == LIVE_PREAMBLE
    assert items[2]["content"] == [
        {"type": "output_text", "text": "You asked me to dim it at ten."}
    ]


@pytest.mark.parametrize("turns", [10, 100, 400])
def test_live_input_within_128_messages_and_the_token_limit(turns: int) -> None:
    h = History(max_items=1000, max_chars=200_000)
    for n in range(turns):
        turn(h, f"question {n} " + "word " * 30, f"answer {n} " + "word " * 40)
    items = h.live_input()
    _check_live(items)
    assert len(items) <= LIVE_MAX_MESSAGES
    tokens = sum(estimate_tokens(i["content"][0]["text"]) + 8 for i in items)
    assert tokens <= LIVE_MAX_TOKENS
    assert items[0]["role"] == "developer"  # the preamble stays, whatever is trimmed
    newest = h.entries()[-1].text
    assert items[-1]["content"][0]["text"] == newest  # trimmed from the oldest end
    texts = [i["content"][0]["text"] for i in items[1:]]
    all_texts = [e.text for e in h.entries()]
    assert texts == all_texts[len(all_texts) - len(texts) :]


def test_live_input_respects_smaller_limits() -> None:
    h = History()
    for n in range(10):
        turn(h, f"q{n}", f"a{n}")
    items = h.live_input(max_messages=5)
    assert len(items) == 5 and items[-1]["content"][0]["text"] == "a9"
    assert h.live_input(max_tokens=5) == []  # not even one message fits beside the preamble
