"""The appliance's call factory: bad events are all counted, their log lines rate-limited per
kind (a synthetic clock; no call is made)."""

from __future__ import annotations

import logging

import pytest

from rtedge.app_calls import BAD_EVENT_LOG_S, CallMaker
from rtedge.audio.pipeline import AudioPipeline
from rtedge.settings import AudioSettings, RealtimeSettings
from rtedge.state import State
from rtedge.timers import ManualTimers


def test_a_storm_of_bad_events_is_counted_in_full_and_logged_once_per_kind(
    caplog: pytest.LogCaptureFixture,
) -> None:
    state, clock = State(), ManualTimers(now=5.0)
    maker = CallMaker(
        RealtimeSettings(),
        state,
        AudioPipeline(AudioSettings(), state),  # threads not started: no device is opened
        session={},
        on_event=lambda event: None,
        clock=clock,
    )
    with caplog.at_level(logging.WARNING, logger="rtedge"):
        for _ in range(500):
            maker.bad_event("undecodable", "JSONDecodeError")
            clock.advance(0.001)
        maker.bad_event("oversized", "over 1 MiB")
        clock.advance(BAD_EVENT_LOG_S)
        maker.bad_event("undecodable", "JSONDecodeError")
    assert state.events_bad["undecodable"] == 501 and state.events_bad["oversized"] == 1
    lines = [r.getMessage() for r in caplog.records if "bad event" in r.getMessage()]
    assert lines == [
        "bad event from the service (undecodable): JSONDecodeError [1 so far]",
        "bad event from the service (oversized): over 1 MiB [1 so far]",
        "bad event from the service (undecodable): JSONDecodeError [501 so far]",
    ]
