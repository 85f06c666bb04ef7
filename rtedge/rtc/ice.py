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
import time
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
#: How often the time since the peer was last heard is compared with the limits.
CONSENT_POLL_S = 0.1
#: RFC 7675 section 5.1: consent expires this long after the last answer to a check, however
#: much else the peer sends (what arrives without a check answered proves nothing about consent).
CONSENT_EXPIRY_S = 30.0

_original_data_received = aioice.ice.Connection.data_received
#: set on a Connection by the data hook: when a packet from the peer last arrived
_HEARD = "_rtedge_heard"


def _data_received(self: Any, data: bytes, component: int) -> None:
    """Every non-STUN packet the agent's sockets receive (DTLS, SRTP, SCTP): the peer is alive."""
    setattr(self, _HEARD, time.monotonic())
    _original_data_received(self, data, component)


def _retransmissions(limit_s: float) -> int:
    """How many times a check is sent again (RTO 0.5 s, doubling) while it can still count."""
    n = 0
    while aioice.stun.RETRY_RTO * (2 ** (n + 2) - 1) <= limit_s:
        n += 1
    return n


def tune_consent(liveness_timeout_s: float) -> None:
    """Make ICE consent freshness (RFC 7675) notice a vanished service within
    ``liveness_timeout_s`` of the last packet from it, whether it streams or is silent. aioice
    checks every 5 s and gives up after 6 misses (~35 s); counting misses is also inexact, since
    a missed check costs its interval plus the 0.5 s transaction timeout (10 misses at a 1 s
    interval took 15 s). Here checks go out every ``CONSENT_INTERVAL_S`` without waiting for
    each other, each sent again within the limit so a late answer still counts, and the call
    ends by the clock: ``liveness_timeout_s`` after the peer was last heard (an answer, or any
    media or data packet: on a busy machine the receive queues overflow during a burst and drop
    answers while the call is plainly alive), or ``CONSENT_EXPIRY_S`` after the last answer
    (RFC 7675's hard limit). Seen within ``CONSENT_POLL_S``. Process-wide."""
    limit = liveness_timeout_s
    retransmissions = _retransmissions(limit)
    aioice.ice.CONSENT_INTERVAL = 1  # unused by the replacement; kept for anything reading it

    async def query_consent(self: aioice.ice.Connection) -> None:
        assert self.remote_password is not None
        key = self.remote_password.encode("utf8")
        last_answer = time.monotonic()
        setattr(self, _HEARD, last_answer)
        checks: set[asyncio.Task[None]] = set()

        async def check(pair: Any) -> None:
            nonlocal last_answer
            request = self.build_request(pair, nominate=False)
            with contextlib.suppress(aioice.stun.TransactionError):
                await pair.protocol.request(
                    request, pair.remote_addr, integrity_key=key, retransmissions=retransmissions
                )
                last_answer = max(last_answer, time.monotonic())

        next_check = time.monotonic()
        try:
            while True:
                await asyncio.sleep(CONSENT_POLL_S)
                now = time.monotonic()
                heard = max(last_answer, getattr(self, _HEARD))
                if now - heard > limit or now - last_answer > CONSENT_EXPIRY_S:
                    log.info(
                        "ICE consent expired: nothing heard for %.1f s, no answer for %.1f s",
                        now - heard,
                        now - last_answer,
                    )
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
    aioice.ice.Connection.data_received = _data_received  # type: ignore[method-assign]
