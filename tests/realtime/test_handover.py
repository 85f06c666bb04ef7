"""When a call is due for rotation, with injected times: by age since it began serving, ahead of
the end its service announced (GPT-Live's ``expires_at``), or at once to renew the session."""

from __future__ import annotations

from rtedge.realtime.handover import ROTATE_BEFORE_EXPIRY_S, rotation_due


def test_by_age_since_serving() -> None:
    assert not rotation_due(1000.0 + 3299, serving_since=1000.0, rotate_after_s=3300)
    assert rotation_due(1000.0 + 3300, serving_since=1000.0, rotate_after_s=3300)


def test_a_prepared_call_counts_from_the_switch() -> None:
    # opened at 0, waited for a quiet moment until 40, serving since then
    assert not rotation_due(42.0, serving_since=40.0, rotate_after_s=3.0, opened_at=0.0)
    assert rotation_due(43.0, serving_since=40.0, rotate_after_s=3.0, opened_at=0.0)


def due(now: float, expires_at: float) -> bool:
    return rotation_due(
        now, serving_since=0.0, rotate_after_s=10**6, expires_at=expires_at, opened_at=0.0
    )


def test_ahead_of_the_announced_end() -> None:
    assert not due(3600.0 - ROTATE_BEFORE_EXPIRY_S - 1, 3600.0)
    assert due(3600.0 - ROTATE_BEFORE_EXPIRY_S, 3600.0)
    # a short session rotates at half its life rather than at once
    assert not due(29.0, 60.0) and due(30.0, 60.0)


def test_renew_is_due_at_once() -> None:
    assert rotation_due(0.0, serving_since=0.0, rotate_after_s=3300, renew=True)
