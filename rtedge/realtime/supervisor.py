"""Keep one call up forever: build it, watch it, rebuild it with backoff, rotate it before the cap.

How long to wait between calls is rtedge.realtime.reconnect's policy (unit-tested on its own);
times are read from ``clock`` (``time.monotonic`` unless a test injects one). Rotation waits for a
quiet moment between turns so no turn is cut; with ``make_before_break`` the next call is
prepared while the current one serves (rtedge.realtime.handover). Every new call is seeded with
the conversation so far (``seeder``) before its first turn.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from rtedge.live.conversation import LiveConversation
from rtedge.logs import event as log_event
from rtedge.realtime.call import Call
from rtedge.realtime.conversation import Conversation
from rtedge.realtime.handover import Handover, Seeder, rotation_due
from rtedge.realtime.liveness import Facts, Liveness
from rtedge.realtime.reconnect import ReconnectPolicy
from rtedge.realtime.signaling import SignalingError
from rtedge.settings import ReconnectSettings
from rtedge.state import Connection, State, Turn

log = logging.getLogger(__name__)

WATCH_INTERVAL_S = 0.25


class Supervisor:
    def __init__(
        self,
        make_call: Callable[[], Call],
        conversation: Conversation | LiveConversation,
        state: State,
        settings: ReconnectSettings,
        *,
        connect_timeout_s: float,
        liveness_timeout_s: float,
        rotate_after_s: float,
        seeder: Seeder | None = None,
        make_before_break: bool = False,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._make_call = make_call
        self._conv = conversation
        self._state = state
        self._connect_timeout_s = connect_timeout_s
        self._liveness_timeout_s = liveness_timeout_s
        self._rotate_after_s = rotate_after_s
        self._clock = clock
        self.policy = ReconnectPolicy(settings)
        self.call: Call | None = None
        self._wake = asyncio.Event()
        self.rotations = 0
        self._seeder = seeder
        self.handover = (
            Handover(make_call, connect_timeout_s, seeder, conversation.configure)
            if make_before_break
            else None
        )
        self._adopted: Call | None = None  # switched to before its watch began
        self._renew = False
        self._due = False  # the current call is to be rotated at the next quiet moment
        # A due rotation switches the moment a turn ends, not at the next watch tick: a user
        # who presses again right after a reply leaves a quiet moment of a few milliseconds.
        state.subscribe(self._on_state)

    def _on_state(self, state: State) -> None:
        if self._due and state.turn is Turn.IDLE and not state.ptt_held:
            asyncio.get_running_loop().call_soon(self.switch_if_due)
            self._wake.set()  # without a prepared call, the watch rotates at once

    def switch_if_due(self) -> None:
        """Make-before-break: when a rotation is due, the next call is ready and nothing is in
        flight, the conversation moves to the next call now, in one step (the app calls this
        before a press, so a press at the switch lands on the new call)."""
        old, handover = self.call, self.handover
        if not self._due or handover is None or old is None or not self._conv.quiet:
            return
        nxt = handover.take()
        if nxt is None:
            return
        self._conv.detach()
        if self._seeder is not None:
            self._seeder.call_ended()
        self._state.call_seconds_done = self._state.call_seconds()
        self._adopted = nxt
        self._take_over(nxt, seed=False)  # seeded when prepared, caught up by take()
        self._wake.set()  # the old call's watch ends now

    def renew(self) -> None:
        """Start a new session at the next quiet moment (the conversation was forgotten)."""
        self._renew = True

    def session_expired(self) -> None:
        if self.call is not None:
            self.call.mark_dead("session_expired")

    async def run(self) -> None:
        """Runs until cancelled; never raises for a transient fault."""
        try:
            await self._run()
        finally:
            if self.handover is not None:
                await self.handover.aclose()

    async def _run(self) -> None:
        while True:
            delay = await self._one_call()
            if delay > 0:
                self._state.update(
                    connection=self._state.connection
                    if self._state.connection is Connection.AUTH_FAILED
                    else Connection.BACKOFF,
                    backoff_until=time.time() + delay,
                )
                log_event(
                    log,
                    logging.INFO,
                    "backoff",
                    "next attempt in %.1fs",
                    delay,
                    delay_s=f"{delay:.1f}",
                )
                await asyncio.sleep(delay)
            self._state.update(backoff_until=None)

    async def _one_call(self) -> float:
        """One call from connect to death; returns how long to wait before the next."""
        call, self._adopted = self._adopted, None
        if call is None:
            self._state.update(connection=Connection.CONNECTING)
            call = self._make_call()
            self.call = call
            try:
                async with asyncio.timeout(self._connect_timeout_s):
                    await call.open()
            except SignalingError as exc:
                await call.close(hangup=False)
                return self._failed_signaling(exc)
            except Exception as exc:  # a timeout, ICE failure, bad answer: all transient
                await call.close(hangup=False)
                reason = (
                    "connect timed out" if isinstance(exc, TimeoutError) else str(exc) or repr(exc)
                )
                return self._failed(reason)
            self._take_over(call, seed=True)
        try:
            reason = await self._watch(call)
        finally:
            if self.call is call:
                self._conv.detach()
                if self._seeder is not None:
                    self._seeder.call_ended()
        if self.call is not call and self.handover is not None:
            # Make-before-break: the next call took over; this one hangs up behind it.
            self.handover.retire(call, "rotation")
            self.rotations += 1
            log_event(log, logging.INFO, "rotation", "session rotated (make-before-break)")
            return self.policy.rotated()
        if reason != "rotation" and self.handover is not None:
            self.handover.discard()
        ended_at = self._clock()  # closing and hanging up take time that is no part of the call
        call.mark_dead(reason)  # the hangup names why (a watch rule's reason is not set yet)
        if reason != "rotation":
            # /healthz says so now: closing and hanging up can take seconds on a dead link
            self._state.update(connection=Connection.CONNECTING, last_error=reason)
        await call.close(hangup=True)
        self.call = None
        self._state.call_seconds_done = self._state.call_seconds()
        self._state.update(call_id=None, session_started=None)
        if reason == "rotation":
            self.rotations += 1
            log_event(log, logging.INFO, "rotation", "session rotated before the cap")
            return self.policy.rotated()
        self._state.reconnects += 1
        self._state.update(last_error=reason)
        delay = self.policy.call_ended(reason, opened_at=call.opened_at, now=ended_at)
        if reason == "session_expired":
            log_event(log, logging.WARNING, "reconnect", "session expired; rebuilding now")
            return delay
        log_event(
            log,
            logging.WARNING,
            "reconnect",
            "call lost (%s); reconnecting in %.1fs",
            reason,
            delay,
            reason=reason,
        )
        return delay

    def _take_over(self, call: Call, *, seed: bool) -> None:
        """``call`` becomes the current call: nothing here awaits, so a press lands either on
        the call before or on this one."""
        self.call = call
        call.held = False
        self._renew = self._due = False
        self._state.calls_started += 1
        self._state.update(
            connection=Connection.CONNECTED,
            call_id=call.call_id,
            session_started=self._clock(),
            last_error=None,
        )
        log_event(log, logging.INFO, "connected", "call %s up", call.call_id, call_id=call.call_id)
        self._conv.attach(call.send)
        if seed and self._seeder is not None:
            self._seeder.seed(call.send)

    async def _watch(self, call: Call) -> str:
        dead = asyncio.ensure_future(call.wait_dead())
        liveness = Liveness(self._liveness_timeout_s)
        self._wake.clear()
        switched_at = self._clock()
        wake = asyncio.ensure_future(self._wake.wait())
        try:
            while True:
                # FIRST_COMPLETED: a death or a wake is acted on at once, not at the next tick
                # (without it asyncio.wait waits for both: a reconnect started up to a tick late).
                await asyncio.wait(
                    {dead, wake}, timeout=WATCH_INTERVAL_S, return_when=asyncio.FIRST_COMPLETED
                )
                if self.call is not call:
                    return "rotation"  # switched to the next call (switch_if_due)
                if dead.done():
                    return dead.result()
                if wake.done():
                    self._wake.clear()
                    wake = asyncio.ensure_future(self._wake.wait())
                now = self._clock()
                reason = liveness.check(
                    Facts(
                        now=now,
                        opened_at=call.opened_at or now,
                        last_rtp=call.last_rtp,
                        last_event=call.last_event,
                        turn=self._state.turn,
                        turn_since=self._conv.turn_since,
                        playing=self._conv.playing,
                    )
                )
                if reason is not None:
                    return reason
                # A prepared call counts from the switch: it may have waited for a quiet moment.
                self._due = rotation_due(
                    now,
                    serving_since=max(call.opened_at or now, switched_at),
                    rotate_after_s=self._rotate_after_s,
                    expires_at=call.expires_at,
                    opened_at=call.opened_at,
                    renew=self._renew,
                )
                if self._due and self._rotate_now(call):
                    return "rotation"
        finally:
            dead.cancel()
            wake.cancel()

    def _rotate_now(self, call: Call) -> bool:
        """Rotation is due: prepare the next call (make-before-break) and switch to it at a
        quiet moment. Without a prepared call (none asked for, or preparing it failed) the
        rotation breaks before it makes, as before: True says so."""
        handover = self.handover
        if handover is None:
            return self._conv.quiet
        handover.start()
        if handover.gave_up and self._conv.quiet:
            handover.reset()  # the next rotation tries again
            return True
        self.switch_if_due()
        return self.call is not call

    def _failed_signaling(self, exc: SignalingError) -> float:
        msg = str(exc)
        delay = self.policy.connect_failed(exc.kind, retry_after=exc.retry_after)
        if exc.kind == "auth":
            self._state.update(connection=Connection.AUTH_FAILED, last_error=msg)
            log_event(
                log,
                logging.ERROR,
                "auth_failed",
                "service refused the key (%s); retrying in %.0fs",
                msg,
                delay,
            )
            return delay
        self._state.update(last_error=msg)
        log_event(log, logging.WARNING, "connect_failed", "connect failed: %s", msg, kind=exc.kind)
        return delay

    def _failed(self, reason: str) -> float:
        self._state.update(last_error=reason)
        log_event(log, logging.WARNING, "connect_failed", "connect failed: %s", reason)
        return self.policy.connect_failed()
