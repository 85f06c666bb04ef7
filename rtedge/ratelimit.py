"""Token buckets: how often something may happen (events from a service, log lines about bad
requests), with an injected clock so the arithmetic is tested without sleeping."""

from __future__ import annotations

import time
from collections.abc import Callable


class TokenBucket:
    """``rate`` per second on average, bursts of up to ``burst``."""

    def __init__(
        self, rate: float, burst: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._tokens = burst
        self._stamp = clock()
        self.refused = 0

    def allow(self, cost: float = 1.0) -> bool:
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
        self._stamp = now
        if self._tokens + 1e-9 >= cost:  # clock arithmetic in floats: 0.1 s * 10/s is 0.99999
            self._tokens -= cost
            return True
        self.refused += 1
        return False

    def take_refused(self) -> int:
        """Refusals since the last call (for "... and N more" in the next log line)."""
        n, self.refused = self.refused, 0
        return n
