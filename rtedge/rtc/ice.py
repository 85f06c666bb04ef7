"""Host candidates for aiortc's ICE agent.

aioice never offers 127.0.0.1, so on a loopback-only network (a test, or a device talking to a
peer on the same box with no interface up) a call would have no candidate at all. When both ends
are on this machine we hand aioice the loopback address instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Sequence
from typing import Any

import aioice.ice
import aioice.stun

log = logging.getLogger(__name__)

_original = aioice.ice.get_host_addresses


def use_host_addresses(addresses: Sequence[str] | None) -> None:
    """Make aioice gather only ``addresses`` (None restores its own discovery). Process-wide."""
    if addresses is None:
        aioice.ice.get_host_addresses = _original
        return
    fixed = list(addresses)

    def _fixed(use_ipv4: bool, use_ipv6: bool) -> list[str]:
        return [a for a in fixed if (":" in a and use_ipv6) or (":" not in a and use_ipv4)]

    aioice.ice.get_host_addresses = _fixed


#: A consent check (one ~100-byte STUN request, answered by every WebRTC endpoint) this often.
CONSENT_INTERVAL_S = 0.5
#: How often the time since the last answer is compared with the limit.
CONSENT_POLL_S = 0.1


def tune_consent(liveness_timeout_s: float) -> None:
    """Make ICE consent freshness (RFC 7675) notice a vanished service within
    ``liveness_timeout_s`` of its last answer, whether it streams or is silent. aioice checks
    every 5 s and gives up after 6 misses (~35 s); counting misses is also inexact, since a
    missed check costs its interval plus the 0.5 s transaction timeout (10 misses at a 1 s
    interval took 15 s). Here checks go out every ``CONSENT_INTERVAL_S`` without waiting for
    each other, and consent expires by the clock: ``liveness_timeout_s`` after the last answer
    (seen within ``CONSENT_POLL_S``). Process-wide."""
    limit = liveness_timeout_s
    aioice.ice.CONSENT_INTERVAL = 1  # unused by the replacement; kept for anything reading it

    async def query_consent(self: aioice.ice.Connection) -> None:
        assert self.remote_password is not None
        key = self.remote_password.encode("utf8")
        loop = asyncio.get_running_loop()
        last_ok = loop.time()
        checks: set[asyncio.Task[None]] = set()

        async def check(pair: Any) -> None:
            nonlocal last_ok
            request = self.build_request(pair, nominate=False)
            with contextlib.suppress(aioice.stun.TransactionError):
                await pair.protocol.request(
                    request, pair.remote_addr, integrity_key=key, retransmissions=0
                )
                last_ok = max(last_ok, loop.time())

        next_check = loop.time()
        try:
            while True:
                await asyncio.sleep(CONSENT_POLL_S)
                now = loop.time()
                if now - last_ok > limit:
                    log.info("ICE consent expired: no answer for %.1f s", now - last_ok)
                    self._query_consent_task = None
                    # Tell the transport first: closing the sockets can take seconds when the
                    # link is down (a datagram transport waits for its unsent buffer).
                    self._emit_event(aioice.ice.ConnectionClosed())
                    await self.close()
                    return
                if now >= next_check:
                    next_check = now + CONSENT_INTERVAL_S * (0.8 + 0.4 * random.random())
                    for pair in list(self._nominated.values()):
                        task = asyncio.ensure_future(check(pair))
                        checks.add(task)
                        task.add_done_callback(checks.discard)
        finally:
            for task in checks:
                task.cancel()

    aioice.ice.Connection.query_consent = query_consent  # type: ignore[method-assign]
