"""Make-before-break rotation: the next call is opened and seeded while the current one serves.

The prepared call is held (rtedge.realtime.call): its events are not the conversation's and its
audio is not played until the supervisor switches to it, at a quiet moment, in one step on the
event loop, so a press after the switch lands on the new call. The old call is hung up in the
background. Nothing here depends on the provider: a call that says when it expires rotates the
same way as one rotated by age.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any, Protocol

from rtedge.logs import event as log_event
from rtedge.realtime.call import Call

log = logging.getLogger(__name__)

Mark = tuple[int, int]

#: A call whose service says when it ends (GPT-Live's ``expires_at``) is rotated this long
#: before (PROTOCOL-LIVE.md §6.5 suggests 2-5 minutes), or at half its life if that is shorter.
ROTATE_BEFORE_EXPIRY_S = 120.0


def rotation_due(
    now: float,
    *,
    serving_since: float,
    rotate_after_s: float,
    expires_at: float | None = None,
    opened_at: float | None = None,
    renew: bool = False,
) -> bool:
    """Whether the current call is to be rotated (all times monotonic): ``rotate_after_s`` after
    it began serving, ahead of the end its service announced, or at once when the session is
    to be renewed (the conversation was forgotten)."""
    if renew or now - serving_since >= rotate_after_s:
        return True
    if expires_at is None:
        return False
    life = expires_at - (opened_at if opened_at is not None else serving_since)
    return now >= expires_at - min(ROTATE_BEFORE_EXPIRY_S, max(0.0, life / 2))


class Seeder(Protocol):
    def seed(self, send: Callable[[dict[str, object]], bool]) -> Mark: ...

    def catch_up(self, send: Callable[[dict[str, object]], bool], mark: Mark) -> bool: ...

    def call_ended(self) -> None: ...


class Handover:
    def __init__(
        self,
        make_call: Callable[[], Call],
        connect_timeout_s: float,
        seeder: Seeder | None,
        configure: Callable[[Callable[[dict[str, Any]], bool]], None] | None = None,
    ) -> None:
        self._make_call = make_call
        self._configure = configure
        self._connect_timeout_s = connect_timeout_s
        self._seeder = seeder
        self._task: asyncio.Task[tuple[Call, Mark | None] | None] | None = None
        self._closing: set[asyncio.Task[None]] = set()
        self.prepared = 0
        self.failed = 0

    @property
    def preparing(self) -> bool:
        return self._task is not None and not self._task.done()

    @property
    def gave_up(self) -> bool:
        """The last preparation failed: rotate the old way (break, then make)."""
        return self._task is not None and self._task.done() and self._task.result() is None

    def start(self) -> None:
        """Begin preparing the next call unless one is ready or on its way."""
        if self._task is None:
            self._task = asyncio.ensure_future(self._prepare())

    def take(self) -> Call | None:
        """The prepared call, brought up to date with what was said since it was seeded; None
        while it is still being prepared, or when it failed or went stale (then it is dropped
        and the next ``start`` prepares another)."""
        task = self._task
        if task is None or not task.done():
            return None
        result = task.result()
        if result is None:
            return None
        self._task = None
        call, mark = result
        fresh = mark is None or self._seeder is None or self._seeder.catch_up(call.send, mark)
        if call.is_dead or not fresh:
            why = "died while waiting" if call.is_dead else "history forgotten since seeding"
            log.info("prepared call dropped: %s", why)
            self.retire(call, "stale")
            return None
        return call

    def discard(self) -> None:
        """The current call failed: a call prepared to follow it is not used (the rebuilt call
        is seeded afresh), so it does not stay open beside it."""
        task, self._task = self._task, None
        if task is None:
            return
        if not task.done():
            task.cancel()  # _prepare closes what it opened
            return
        result = None if task.cancelled() or task.exception() else task.result()
        if result is not None:
            self.retire(result[0], "unused")

    def reset(self) -> None:
        """Forget a failed attempt so the next rotation tries again."""
        if self._task is not None and self._task.done() and self._task.result() is None:
            self._task = None

    async def _prepare(self) -> tuple[Call, Mark | None] | None:
        call = self._make_call()
        call.held = True
        try:
            async with asyncio.timeout(self._connect_timeout_s):
                await call.open()
        except asyncio.CancelledError:
            await asyncio.shield(call.close(hangup=True))
            raise
        except Exception as exc:  # any failure: the rotation falls back to break-before-make
            self.failed += 1
            reason = "timed out" if isinstance(exc, TimeoutError) else str(exc) or repr(exc)
            log_event(log, logging.WARNING, "handover_failed", "next call not prepared: %s", reason)
            await call.close(hangup=False)
            return None
        if self._configure is not None:
            self._configure(call.send)
        mark = self._seeder.seed(call.send) if self._seeder is not None else None
        self.prepared += 1
        log.info("next call %s ready (make-before-break)", call.call_id)
        return call, mark

    def retire(self, call: Call, reason: str) -> None:
        """Hang ``call`` up in the background: nothing it sends is played or handled now."""
        call.held = True
        call.mark_dead(reason)
        task = asyncio.ensure_future(call.close(hangup=True))
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    async def aclose(self) -> None:
        """Shutdown: a call being prepared is abandoned, calls being retired finish closing."""
        task, self._task = self._task, None
        if task is not None:
            if not task.done():
                task.cancel()
            with contextlib.suppress(BaseException):
                result = await task
                if result is not None:
                    self.retire(result[0], "shutdown")
        for closing in list(self._closing):
            with contextlib.suppress(BaseException):
                await closing
