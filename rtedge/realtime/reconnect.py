"""The supervisor's reconnect policy: how long to wait before the next call, as a pure object.

Backoff is jittered exponential (``[reconnect]``), reset once a call has been healthy for
``healthy_after_s``. A refused key waits ``auth_backoff_s`` (a person has to fix it; hammering the
service would not), a 429 waits at least its ``Retry-After``, ``session_expired`` and a rotation
rebuild at once. Time comes in as arguments: the policy has no clock of its own.
"""

from __future__ import annotations

import random

from rtedge.backoff import Backoff
from rtedge.settings import ReconnectSettings

#: Call endings that rebuild at once: planned (a rotation) or the service's own limit.
AT_ONCE = frozenset({"rotation", "session_expired"})


class ReconnectPolicy:
    def __init__(self, settings: ReconnectSettings, *, rng: random.Random | None = None) -> None:
        self.settings = settings
        self.backoff = Backoff(
            settings.initial_s,
            settings.max_s,
            multiplier=settings.multiplier,
            jitter=settings.jitter,
            rng=rng,
        )

    def healthy(self, opened_at: float | None, now: float) -> bool:
        """A call up ``healthy_after_s`` or more earned a fresh start of the backoff."""
        return opened_at is not None and now - opened_at >= self.settings.healthy_after_s

    def rotated(self) -> float:
        """The call was replaced on purpose: the next one is due now."""
        self.backoff.reset()
        return 0.0

    def call_ended(self, reason: str, *, opened_at: float | None, now: float) -> float:
        """A call that was up died (``reason``): the delay before the next attempt."""
        if reason in AT_ONCE:
            return self.rotated()
        if self.healthy(opened_at, now):
            self.backoff.reset()
        return self.backoff.next_delay()

    def connect_failed(self, kind: str | None = None, *, retry_after: float | None = None) -> float:
        """A call could not be set up. ``kind``: the signaling error's (``auth``,
        ``rate_limited``...), None for a timeout, an ICE failure or a bad answer."""
        if kind == "auth":
            return self.settings.auth_backoff_s  # not a step of the backoff: a person must act
        delay = self.backoff.next_delay()
        if kind == "rate_limited" and retry_after is not None:
            delay = max(delay, retry_after)
        return delay
