"""The peer's assistant answers "what did I ask before?" from the history, and a reply to audio
in a seeded session says what was asked before; a blank session's replies are as they were."""

from __future__ import annotations

from rtedge.peer import brain


def test_recall_questions_are_recognised() -> None:
    for text in ("What did I ask before?", "what have I asked so far", "What did I say earlier?"):
        assert brain.asks_recall(text), text
    for text in ("What is the time?", "Did I leave the oven on?"):
        assert not brain.asks_recall(text), text


def test_recall_answers_from_the_history() -> None:
    assert brain.recall([]) == "You have not asked me anything before."
    assert brain.recall(["turn on the lamp", "what time is it"]) == (
        "Before, you asked: what time is it."
    )


def test_audio_reply_mentions_the_seeded_history_only() -> None:
    assert brain.reply_to_audio(1.2) == "I heard 1.2 seconds of audio."
    assert brain.reply_to_audio(1.2, []) == "I heard 1.2 seconds of audio."
    assert brain.reply_to_audio(1.2, ["[0.8 s of audio]"]) == (
        "I heard 1.2 seconds of audio. Before, you asked: [0.8 s of audio]."
    )
