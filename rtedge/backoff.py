"""Jittered exponential backoff, shared by the call supervisor and the device reopeners."""

from __future__ import annotations

import random


class Backoff:
    """Delays from ``initial_s`` growing by ``multiplier`` up to ``max_s``, each spread by
    +-``jitter`` (a fraction) so that a fleet of devices does not retry in step."""

    def __init__(
        self,
        initial_s: float,
        max_s: float,
        *,
        multiplier: float = 2.0,
        jitter: float = 0.0,
        rng: random.Random | None = None,
    ) -> None:
        self.initial_s = initial_s
        self.max_s = max(max_s, initial_s)
        self.multiplier = multiplier
        self.jitter = jitter
        self._rng = rng or random.Random()
        self.failures = 0

    def next_delay(self) -> float:
        base = min(self.max_s, self.initial_s * self.multiplier**self.failures)
        self.failures += 1
        spread = base * self.jitter
        return max(0.0, base + self._rng.uniform(-spread, spread)) if spread else base

    def reset(self) -> None:
        self.failures = 0
