"""Is the service still there? Rules that a service's own shape cannot teach wrong.

Judged every watch tick from facts the device has: when RTP and events last arrived, the turn
and since when, whether a reply is audible. Three rules, each bounded by ``limit_s``:

- a reply is playing (voice at the speaker, or the service said its output buffer started) and
  no RTP came for ``limit_s``: the audio stopped mid-reply;
- we wait for a reply and no event came for ``limit_s``;
- between replies, a service that has been seen streaming RTP (silence frames) stops: it is
  watched only once learnt in this idle stretch, from RTP that cannot belong to a reply (at
  least ``settle_s`` after the turn went idle, for ``learn_s``). A service that sends nothing
  between replies (OpenAI, GPT-Live, servers with DTX) is never judged by RTP while idle; its
  vanishing is seen by ICE consent (``rtedge.rtc.ice``), whatever it streams.

A new reply forgets what was learnt: a service may stream between some replies and not others.
Time is passed in (``now``), so the rules are tested on a simulated clock.
"""

from __future__ import annotations

from dataclasses import dataclass

from rtedge.state import Turn

#: RTP counts as "still coming" if a frame arrived this recently (watch tick x 2).
FRESH_S = 0.5
SETTLE_S = 1.0
LEARN_S = 1.0


@dataclass(frozen=True, slots=True)
class Facts:
    now: float
    opened_at: float
    last_rtp: float
    last_event: float
    turn: Turn
    turn_since: float
    playing: bool  # voice at the speaker, or the service's output buffer started


class Liveness:
    def __init__(self, limit_s: float, *, settle_s: float = SETTLE_S, learn_s: float = LEARN_S):
        self.limit_s = limit_s
        self.settle_s = settle_s
        self.learn_s = learn_s
        self.streams_when_idle = False
        self._streaming_since: float | None = None

    def check(self, f: Facts) -> str | None:
        """The reason the call is dead, or None while it looks alive."""
        since = max(f.turn_since, f.opened_at)
        if f.turn is not Turn.IDLE:
            self.streams_when_idle = False
            self._streaming_since = None
        stalled = f.now - max(f.last_rtp, since) > self.limit_s
        if f.playing and f.turn is not Turn.LISTENING and stalled:
            return "no audio from the service while it was speaking"
        if f.turn is Turn.THINKING and f.now - max(f.last_event, since) > self.limit_s:
            return "no events from the service while waiting for a reply"
        if f.turn is not Turn.IDLE or f.playing:
            return None
        fresh = f.now - f.last_rtp <= FRESH_S
        if self.streams_when_idle:
            if f.now - f.last_rtp > self.limit_s:
                return "the service stopped sending audio"
            return None
        if not fresh or f.now - since < self.settle_s:
            self._streaming_since = None
            return None
        if self._streaming_since is None:
            self._streaming_since = f.now
        elif f.now - self._streaming_since >= self.learn_s:
            self.streams_when_idle = True
        return None


__all__ = ["Facts", "Liveness"]
