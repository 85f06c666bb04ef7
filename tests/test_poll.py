"""The one polling helper: returns the condition's value, fails naming what it waited for."""

from __future__ import annotations

import itertools

import pytest

from tests.poll import until, wait_for


def test_wait_for_returns_the_first_true_value() -> None:
    counter = itertools.count()
    assert wait_for(lambda: max(0, next(counter) - 2), 5, "the third poll", step=0.001) == 1


def test_wait_for_names_what_and_the_last_value_when_the_bound_passes() -> None:
    with pytest.raises(AssertionError, match=r"waiting for the impossible \(last: \[\]\)"):
        wait_for(list, 0.05, "the impossible", step=0.01)


async def test_until_returns_the_value_or_names_what_it_waited_for() -> None:
    counter = itertools.count()
    assert await until(lambda: next(counter) >= 3, 5, "the fourth poll", step=0.001) is True
    with pytest.raises(AssertionError, match="waiting for nothing"):
        await until(lambda: None, 0.05, "nothing")


async def test_until_awaits_an_async_query() -> None:
    answers = iter([None, "", "shown"])

    async def query() -> str | None:
        return next(answers)

    assert await until(query, 5, "the page", step=0.001) == "shown"
