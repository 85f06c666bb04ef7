"""The supervisor's watch sees a dead call or a wake at once, counted in event-loop turns (no
clock): with the watch tick made an hour long, a reconnect that waited for the tick would never
come."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest

from rtedge.realtime import supervisor as supervisor_mod
from rtedge.realtime.supervisor import Supervisor
from rtedge.settings_device import ReconnectSettings
from rtedge.state import State

TURNS = 20  # loop turns allowed: the watch needs a handful, a tick would need an hour


class FakeCall:
    """What the watch reads of a call: its death and its liveness clocks."""

    def __init__(self) -> None:
        self._dead = asyncio.Event()
        self.reason = ""
        self.opened_at = self.last_rtp = self.last_event = 0.0
        self.expires_at = None

    def mark_dead(self, reason: str) -> None:
        self.reason = reason
        self._dead.set()

    async def wait_dead(self) -> str:
        await self._dead.wait()
        return self.reason


def make_supervisor(call: FakeCall) -> Supervisor:
    conv = SimpleNamespace(turn_since=0.0, playing=False, quiet=True)
    sup = Supervisor(
        lambda: call,  # type: ignore[arg-type,return-value]
        conv,  # type: ignore[arg-type]
        State(),
        ReconnectSettings(),
        connect_timeout_s=5.0,
        liveness_timeout_s=3600.0,
        rotate_after_s=3600.0,
        clock=lambda: 0.0,
    )
    sup.call = call  # type: ignore[assignment]
    return sup


async def turns_until_done(task: asyncio.Task[str]) -> int:
    for turn in range(TURNS):
        if task.done():
            return turn
        await asyncio.sleep(0)
    return TURNS


async def test_a_dead_call_ends_the_watch_without_waiting_for_the_tick(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(supervisor_mod, "WATCH_INTERVAL_S", 3600.0)
    call = FakeCall()
    sup = make_supervisor(call)
    watch = asyncio.ensure_future(sup._watch(call))  # type: ignore[arg-type]
    await turns_until_done(watch)
    assert not watch.done(), "the watch ended before the call died"
    call.mark_dead("ice_failed")
    turns = await turns_until_done(watch)
    try:
        assert turns < TURNS, "the watch waited for its tick after the call died"
        assert watch.result() == "ice_failed"
    finally:
        watch.cancel()


async def test_a_wake_is_acted_on_without_waiting_for_the_tick(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A wake (a switched call) is seen at once: the watch of a call no longer current ends."""
    monkeypatch.setattr(supervisor_mod, "WATCH_INTERVAL_S", 3600.0)
    call = FakeCall()
    sup = make_supervisor(call)
    watch = asyncio.ensure_future(sup._watch(call))  # type: ignore[arg-type]
    await turns_until_done(watch)
    sup.call = FakeCall()  # type: ignore[assignment]
    sup._wake.set()
    turns = await turns_until_done(watch)
    try:
        assert turns < TURNS, "the wake was seen only at the next tick"
        assert watch.result() == "rotation"
    finally:
        watch.cancel()
