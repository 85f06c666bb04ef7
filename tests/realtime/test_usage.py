from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from rtedge.peer import wire
from rtedge.realtime.usage import count_usage


def test_ga_usage_counted_per_direction_and_modality() -> None:
    tokens: Counter[str] = Counter()
    count_usage(tokens, wire.usage(3, 40, 5, 120))  # the shape the local peer sends
    count_usage(tokens, wire.usage(0, 10, 0, 20))
    assert tokens == {"input_text": 3, "input_audio": 50, "output_text": 5, "output_audio": 140}


def test_totals_without_details_are_unspecified() -> None:
    tokens: Counter[str] = Counter()
    count_usage(tokens, {"input_tokens": 12, "output_tokens": 30})
    count_usage(tokens, {"input_tokens": 10, "input_token_details": {"audio_tokens": 7}})
    assert tokens == {
        "input_unspecified": 15,
        "output_unspecified": 30,
        "input_audio": 7,
    }


@pytest.mark.parametrize(
    "usage",
    [
        None,
        "lots",
        [],
        {"input_tokens": -5},
        {"input_tokens": True},
        {"input_tokens": 1e9},
        {"input_tokens": 10**12},
        {"output_token_details": {"audio_tokens": "9"}},
        {"output_token_details": ["audio_tokens", 9]},
    ],
)
def test_missing_or_hostile_usage_counts_nothing(usage: Any) -> None:
    tokens: Counter[str] = Counter()
    count_usage(tokens, usage)
    assert not tokens
