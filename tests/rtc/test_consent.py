"""ICE consent freshness as rtedge tunes it (rtedge/rtc/ice.py), between two real aioice agents
over loopback: a call whose consent answers are lost or late but whose peer is plainly alive
stays up; a silent peer, or one that never answers a check, still loses consent."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import aioice.ice
import aioice.stun
import pytest

from rtedge.rtc import ice
from tests.poll import scaled

#: the liveness limit the agents run with here (the daemon's is 10 s by default)
LIMIT_S = 2.0


@pytest.fixture(autouse=True)
def consent_tuned(monkeypatch: pytest.MonkeyPatch) -> None:
    """Loopback candidates and rtedge's consent, undone after the test (both are process-wide)."""
    monkeypatch.setattr(aioice.ice, "get_host_addresses", aioice.ice.get_host_addresses)
    monkeypatch.setattr(aioice.ice, "CONSENT_INTERVAL", aioice.ice.CONSENT_INTERVAL)
    for name in ("query_consent", "data_received"):
        monkeypatch.setattr(aioice.ice.Connection, name, getattr(aioice.ice.Connection, name))
    ice.use_host_addresses(["127.0.0.1"])
    ice.tune_consent(LIMIT_S)


class Pair:
    """Two connected agents: ``a`` checks consent (as the daemon does), ``b`` is the peer, whose
    answers to ``a``'s checks go through ``answering``."""

    def __init__(self, a: aioice.ice.Connection, b: aioice.ice.Connection) -> None:
        self.a, self.b = a, b
        #: ``a``'s ConnectionClosed, once consent is gone
        self.closed = asyncio.ensure_future(a.get_event())
        self.checks_seen = 0
        self.last_answered = time.monotonic()
        #: what ``b`` does with each check: gets a callable that answers it now
        self.answering: Callable[[Callable[[], None]], None] = lambda answer: answer()
        original = b.request_received

        def received(message: aioice.stun.Message, addr: Any, protocol: Any) -> None:
            self.checks_seen += 1

            def answer() -> None:
                self.last_answered = time.monotonic()
                original(message, addr, protocol)

            self.answering(answer)

        b.request_received = received  # type: ignore[method-assign]

    def since_answered(self) -> float:
        return time.monotonic() - self.last_answered


def drop(answer: Callable[[], None]) -> None:
    """A check whose answer is lost."""


@contextlib.asynccontextmanager
async def sending(pair: Pair) -> AsyncIterator[None]:
    """``b`` sends ``a`` an RTP-sized packet (not STUN) every 0.1 s meanwhile."""

    async def send() -> None:
        while True:
            await pair.b.send(b"\x80" + bytes(100))
            await asyncio.sleep(0.1)

    sender = asyncio.ensure_future(send())
    try:
        yield
    finally:
        sender.cancel()


@pytest.fixture
async def pair() -> AsyncIterator[Pair]:
    a = aioice.ice.Connection(ice_controlling=True)
    b = aioice.ice.Connection(ice_controlling=False)
    await asyncio.gather(a.gather_candidates(), b.gather_candidates())
    for x, y in ((a, b), (b, a)):
        for candidate in y.local_candidates:
            await x.add_remote_candidate(candidate)
        await x.add_remote_candidate(None)
        x.remote_username, x.remote_password = y.local_username, y.local_password
    await asyncio.gather(a.connect(), b.connect())
    p = Pair(a, b)
    try:
        yield p
    finally:
        p.closed.cancel()
        await asyncio.gather(a.close(), b.close())


async def stays_up(pair: Pair, seconds: float, checks: int) -> None:
    """Wait ``seconds`` (several liveness limits) and for ``checks`` checks to reach ``b``, failing
    as soon as ``a`` loses consent."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < seconds or pair.checks_seen < checks:
        assert not pair.closed.done(), (
            f"consent lost after {time.monotonic() - t0:.1f} s, {pair.checks_seen} checks"
        )
        assert time.monotonic() - t0 < scaled(60), f"only {pair.checks_seen} checks in 60 s"
        await asyncio.sleep(0.05)


async def closes(pair: Pair) -> float:
    """Seconds from ``b``'s last answer until ``a`` loses consent (failing if that takes far
    longer than any limit)."""
    await asyncio.wait_for(asyncio.shield(pair.closed), scaled(60))
    assert isinstance(pair.closed.result(), aioice.ice.ConnectionClosed)
    return pair.since_answered()


async def test_lost_answers_with_the_peer_still_sending_keep_the_call(pair: Pair) -> None:
    # What a burst does on a busy machine: the receive queue drops the answers, not the call.
    pair.answering = drop
    async with sending(pair):
        await stays_up(pair, 3 * LIMIT_S, checks=10)


async def test_late_answers_count(pair: Pair) -> None:
    # Each answer 0.8 s late (past aioice's first 0.5 s timeout); nothing else from the peer.
    loop = asyncio.get_running_loop()

    def late(answer: Callable[[], None]) -> None:
        loop.call_later(0.8, answer)

    pair.answering = late
    await stays_up(pair, 3 * LIMIT_S, checks=10)


async def test_a_silent_peer_loses_consent_after_the_limit(pair: Pair) -> None:
    await stays_up(pair, 0.5, checks=1)  # answered: consent holds
    pair.answering = drop
    assert await closes(pair) >= LIMIT_S


async def test_a_peer_that_sends_but_never_answers_loses_consent_at_the_rfc_limit(
    pair: Pair, monkeypatch: pytest.MonkeyPatch
) -> None:
    # RFC 7675's 30 s, shortened so the test does not wait that long; traffic alone never
    # stands in for an answer past it.
    monkeypatch.setattr(ice, "CONSENT_EXPIRY_S", 3 * LIMIT_S)
    pair.answering = drop
    async with sending(pair):
        assert await closes(pair) >= 3 * LIMIT_S
