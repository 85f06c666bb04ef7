"""Liveness rules on a simulated clock, ticked as the supervisor does (every 0.25 s): 5 minutes
of idle after replies stay alive whatever the service streams, and a dead service is seen
within the limit."""

from __future__ import annotations

from dataclasses import dataclass

from rtedge.realtime.liveness import Facts, Liveness
from rtedge.state import Turn

TICK = 0.25
LIMIT = 10.0


@dataclass
class Sim:
    liveness: Liveness
    now: float = 1000.0
    opened_at: float = 1000.0
    last_rtp: float = 1000.0
    last_event: float = 1000.0
    turn: Turn = Turn.IDLE
    turn_since: float = 1000.0
    playing: bool = False

    def set_turn(self, turn: Turn) -> None:
        self.turn, self.turn_since = turn, self.now

    def run(self, seconds: float, *, rtp: bool, events: bool = False) -> str | None:
        end = self.now + seconds
        while self.now < end - 1e-9:
            self.now += TICK
            if rtp:
                self.last_rtp = self.now - 0.01
            if events:
                self.last_event = self.now - 0.01
            reason = self.liveness.check(
                Facts(
                    self.now,
                    self.opened_at,
                    self.last_rtp,
                    self.last_event,
                    self.turn,
                    self.turn_since,
                    self.playing,
                )
            )
            if reason is not None:
                return reason
        return None

    def reply(self, *, rtp_after: bool) -> str | None:
        """Press 2 s, think 0.5 s, speak 4 s (RTP and events flowing), then idle."""
        self.set_turn(Turn.LISTENING)
        assert self.run(2.0, rtp=rtp_after) is None
        self.set_turn(Turn.THINKING)
        assert self.run(0.5, rtp=rtp_after, events=True) is None
        self.set_turn(Turn.SPEAKING)
        self.playing = True
        assert self.run(4.0, rtp=True, events=True) is None
        self.playing = False
        self.set_turn(Turn.IDLE)
        return None


def sim() -> Sim:
    return Sim(Liveness(LIMIT))


def test_five_minutes_of_silence_after_replies_is_healthy() -> None:
    """Issue 13: a service that streams only during replies must not be taught to be watched
    between them (the reply's own audio made the call die 10 s after every reply)."""
    s = sim()
    for _ in range(3):
        s.reply(rtp_after=False)
        assert s.run(20.0, rtp=False) is None
    s.reply(rtp_after=False)
    assert s.run(300.0, rtp=False) is None
    assert not s.liveness.streams_when_idle


def test_reply_tail_does_not_teach_idle_streaming() -> None:
    s = sim()
    s.reply(rtp_after=False)
    assert s.run(0.75, rtp=True) is None  # the last frames of the reply arrive after it ends
    assert s.run(300.0, rtp=False) is None


def test_streaming_service_that_stops_is_seen_within_the_limit() -> None:
    s = sim()
    assert s.run(3.0, rtp=True) is None
    assert s.liveness.streams_when_idle
    stopped = s.now
    reason = s.run(30.0, rtp=False)
    assert reason == "the service stopped sending audio"
    assert LIMIT <= s.now - stopped <= LIMIT + 2 * TICK


def test_streaming_between_replies_then_silent_after_one_is_healthy() -> None:
    s = sim()
    assert s.run(5.0, rtp=True) is None
    assert s.liveness.streams_when_idle
    s.reply(rtp_after=True)
    assert not s.liveness.streams_when_idle  # a reply forgets what was learnt
    assert s.run(300.0, rtp=False) is None


def test_audio_stopping_mid_reply_is_seen() -> None:
    s = sim()
    s.set_turn(Turn.SPEAKING)
    s.playing = True
    assert s.run(2.0, rtp=True, events=True) is None
    stopped = s.now
    reason = s.run(30.0, rtp=False, events=True)
    assert reason == "no audio from the service while it was speaking"
    assert LIMIT <= s.now - stopped <= LIMIT + 2 * TICK


def test_no_events_while_waiting_for_a_reply() -> None:
    s = sim()
    s.set_turn(Turn.THINKING)
    reason = s.run(30.0, rtp=True)
    assert reason == "no events from the service while waiting for a reply"
    assert LIMIT <= s.now - s.turn_since <= LIMIT + 2 * TICK


def test_long_press_is_not_a_dead_service() -> None:
    s = sim()
    s.set_turn(Turn.LISTENING)
    assert s.run(60.0, rtp=False) is None
