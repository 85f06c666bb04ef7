"""The synthetic clock the timing logic is unit-tested with: due order, cancelling, chains."""

from __future__ import annotations

from rtedge.timers import ManualTimers


def test_callbacks_run_in_due_order_at_their_own_time() -> None:
    t = ManualTimers(now=10.0)
    seen: list[tuple[str, float]] = []
    t.call_later(0.5, lambda: seen.append(("b", t.time())))
    t.call_later(0.2, lambda: seen.append(("a", t.time())))
    t.advance(0.19)
    assert seen == [] and t.time() == 10.19
    t.advance(1.0)
    assert seen == [("a", 10.2), ("b", 10.5)] and t() == 11.19


def test_cancelled_timers_never_run_and_chains_fall_due_within_one_advance() -> None:
    t = ManualTimers()
    seen: list[str] = []
    t.call_later(0.125, lambda: seen.append("cancelled")).cancel()
    t.call_later(0.125, lambda: t.call_later(0.125, lambda: seen.append("second")))
    t.advance(0.1875)
    assert seen == [] and t.pending == 1
    t.advance(0.0625)
    assert seen == ["second"] and t.pending == 0
