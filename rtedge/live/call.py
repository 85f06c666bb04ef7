"""One GPT-Live call: the Realtime call's WebRTC parts plus the Live session's life.

One GPT-Live call: the Realtime call's WebRTC parts, plus the Live session's life: wait for
``session.started`` (startup timeout), note ``expires_at`` (the supervisor rotates ahead of it:
rtedge.realtime.handover), end with ``session.close`` and wait for ``session.closed``, and sort
every close reason the service gives."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any, Final

from rtedge.live import events as lev
from rtedge.logs import event as log_event
from rtedge.protocol.codec import encode
from rtedge.protocol.server import ServerEvent
from rtedge.realtime.call import Call

log = logging.getLogger(__name__)

#: ``session.closed`` reasons and what the supervisor does: ``session_expired`` rebuilds at
#: once; anything else is a lost call (backoff).
CLOSE_REASONS: Final = {
    "expired": "session_expired",
    "close_requested": "session closed: close_requested",
    "content": "session closed: content",
    "remote_hangup": "session closed: remote_hangup",
    "connection_lost": "session closed: connection_lost",
}


class LiveCall(Call):
    decode = staticmethod(lev.decode_live_event)

    def __init__(self, *args: Any, live_settings: Any, **kwargs: Any) -> None:
        on_event: Callable[[ServerEvent], None] = kwargs.pop("on_event")
        super().__init__(*args, on_event=self._intercept, **kwargs)
        self._forward = on_event
        self._live = live_settings
        self._started = asyncio.Event()
        self._closed = asyncio.Event()
        self.close_reason: str | None = None
        self.final_usage_s: float | None = None

    async def open(self) -> None:
        await super().open()
        dead = asyncio.ensure_future(self.wait_dead())
        started = asyncio.ensure_future(self._started.wait())
        try:
            done, _ = await asyncio.wait(
                {dead, started},
                timeout=self._live.startup_timeout_s,
                return_when=asyncio.FIRST_COMPLETED,
            )
        finally:
            dead.cancel()
            started.cancel()
        if not self._started.is_set():
            reason = self.dead_reason if self.is_dead else "no session.started in time"
            raise ConnectionError(reason or "no session.started")

    def _intercept(self, event: ServerEvent) -> None:
        if event.type == "session.started":
            expires = lev.number(event, "session", "expires_at")  # Unix seconds
            if expires is not None:  # the supervisor rotates ahead of it (monotonic here)
                self.expires_at = time.monotonic() + (expires - time.time())
            self._started.set()
            log_event(
                log,
                logging.INFO,
                "live_started",
                "live session %s started, expires in %.0fs",
                lev.text(event, "session", "id") or self.call_id,
                (expires - time.time()) if expires else -1.0,
            )
        elif event.type == "session.closed":
            reason = lev.text(event, "reason") or "unknown"
            self.close_reason = reason
            self.final_usage_s = lev.number(event, "usage", "seconds")
            self._closed.set()
            log_event(
                log,
                logging.INFO,
                "live_closed",
                "live session closed: %s (%.1f s used)",
                reason,
                self.final_usage_s or 0.0,
                reason=reason,
            )
            self.mark_dead(CLOSE_REASONS.get(reason, f"session closed: {reason}"[:80]))
        self._forward(event)

    async def close(self, *, hangup: bool = True) -> None:
        if hangup and self._started.is_set() and not self._closed.is_set():
            await self._close_session()
        await super().close(hangup=hangup)

    async def _close_session(self) -> None:
        """``session.close``, then keep the connection until ``session.closed`` (bounded): the
        final usage arrives on it, and closing at once can lose it."""
        dc = self._dc
        if dc is None or dc.readyState != "open":
            return
        with contextlib.suppress(Exception):
            dc.send(encode({"type": "session.close", "event_id": f"close_{time.monotonic_ns()}"}))
            log_event(log, logging.INFO, "live_close", "session.close sent; waiting for closed")
        try:
            await asyncio.wait_for(self._closed.wait(), self._live.close_timeout_s)
        except TimeoutError:
            log_event(
                log, logging.WARNING, "live_close", "no session.closed in time: usage unconfirmed"
            )
