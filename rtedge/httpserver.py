"""Serving an aiohttp app on a device with few file descriptors and a small log.

aiohttp's own server waits forever for a request head, accepts any number of connections, and
logs a full traceback for every malformed request. On a kiosk that is a denial of service: a
thousand half-sent requests take every fd (the call's reconnects then fail with "Too many open
files") and a stream of garbage fills the journal. ``LimitedSite`` puts each connection behind
a small protocol wrapper:

- at ``max_connections``, a new connection evicts the oldest one still waiting for its request
  head (a request sent whole, as every real client does, still gets through a slowloris flood);
  with none such, the new one is closed as it is accepted (its fd freed at once);
- a connection that has not sent a whole request head within ``header_timeout_s`` is closed
  (slowloris); later requests on a kept-alive connection are bounded by aiohttp's
  ``keepalive_timeout``, set to the same value;
- malformed requests are logged as one line, rate-limited (``quiet_server_log``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from aiohttp import web

from rtedge.ratelimit import TokenBucket

log = logging.getLogger(__name__)

_HEAD_END: Final = b"\r\n\r\n"


@dataclass
class ConnectionStats:
    open: int = 0
    refused: int = 0
    evicted: int = 0
    timed_out: int = 0
    peak: int = 0


class _Limited(asyncio.Protocol):
    """Forwards everything to aiohttp's protocol, adding the connection cap and head deadline."""

    def __init__(self, site: LimitedSite) -> None:
        self._site = site
        self._inner: Any = None
        self._transport: asyncio.Transport | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._tail = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        site = self._site
        assert isinstance(transport, asyncio.Transport)
        if site.stats.open >= site.max_connections:
            if not site.waiting:
                site.stats.refused += 1
                transport.abort()  # no answer: answering would keep the fd longer
                return
            oldest = next(iter(site.waiting))
            site.stats.evicted += 1
            oldest.abort()
        site.stats.open += 1
        site.stats.peak = max(site.stats.peak, site.stats.open)
        self._transport = transport
        loop = asyncio.get_running_loop()
        self._timer = loop.call_later(site.header_timeout_s, self._head_timeout)
        site.waiting[self] = None
        self._inner = site.protocol_factory()
        self._inner.connection_made(transport)

    def _head_timeout(self) -> None:
        self._site.stats.timed_out += 1
        self.abort()

    def abort(self) -> None:
        self._head_done()
        if self._transport is not None:
            self._transport.abort()  # connection_lost follows, freeing the slot

    def _head_done(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._site.waiting.pop(self, None)

    def data_received(self, data: bytes) -> None:
        if self._inner is None:
            return
        if self._timer is not None:
            window = self._tail + data
            if _HEAD_END in window:
                self._head_done()
            else:
                self._tail = window[-3:]
        self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        if self._inner is None:
            return None
        result: bool | None = self._inner.eof_received()
        return result

    def pause_writing(self) -> None:
        if self._inner is not None:
            self._inner.pause_writing()

    def resume_writing(self) -> None:
        if self._inner is not None:
            self._inner.resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._inner is None:
            return
        self._site.stats.open -= 1
        self._head_done()
        self._inner.connection_lost(exc)
        self._inner = None


class LimitedSite:
    """A TCP listener for an ``AppRunner`` (set up already) with the limits above."""

    def __init__(
        self,
        runner: web.AppRunner,
        host: str,
        port: int,
        *,
        max_connections: int = 64,
        header_timeout_s: float = 5.0,
    ) -> None:
        self._runner = runner
        self._host = host
        self._port = port
        self.max_connections = max_connections
        self.header_timeout_s = header_timeout_s
        self.stats = ConnectionStats()
        self.waiting: dict[_Limited, None] = {}  # connections without a whole head, oldest first
        self._server: asyncio.base_events.Server | None = None

    @property
    def protocol_factory(self) -> Callable[[], Any]:
        server = self._runner.server
        assert server is not None, "runner not set up"
        return server

    async def start(self) -> int:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: _Limited(self), self._host, self._port, reuse_address=True
        )
        return int(self._server.sockets[0].getsockname()[1])

    def refused(self) -> dict[str, int]:
        st = self.stats
        return {
            "connection_cap": st.refused,
            "evicted_half_sent": st.evicted,
            "head_timeout": st.timed_out,
        }

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None


def runner_kwargs(header_timeout_s: float) -> dict[str, Any]:
    """AppRunner settings that go with ``LimitedSite``: idle kept-alive connections end after
    the head timeout, and an unread body is not drained for seconds after the answer."""
    return {"keepalive_timeout": header_timeout_s, "lingering_time": 1.0}


class _OneLine(logging.Filter):
    """aiohttp's "Error handling request" with a traceback -> one line, a few per minute."""

    def __init__(self, bucket: TokenBucket) -> None:
        super().__init__()
        self._bucket = bucket

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info is None:
            return True
        exc = record.exc_info[1]
        if not self._bucket.allow():
            return False
        suppressed = self._bucket.take_refused()
        first = " ".join(str(exc).split())[:160] if exc is not None else ""
        message = record.getMessage()
        record.msg = "%s: %s: %s%s"
        record.args = (
            message,
            type(exc).__name__,
            first,
            f" ({suppressed} more not logged)" if suppressed else "",
        )
        record.exc_info = None
        record.exc_text = None
        record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True


_installed: list[_OneLine] = []


def quiet_server_log(rate_per_s: float = 0.2, burst: float = 5) -> None:
    """Make aiohttp's server log one line per malformed request, rate-limited. Idempotent."""
    if _installed:
        return
    line = _OneLine(TokenBucket(rate_per_s, burst))
    _installed.append(line)
    logging.getLogger("aiohttp.server").addFilter(line)


def install_loop_exception_handler(
    loop: asyncio.AbstractEventLoop, rate_per_s: float = 0.2, burst: float = 10
) -> None:
    """Unhandled errors from callbacks and transports: logged as before, but at most a few per
    minute, so a storm of them (a flood of broken connections) cannot fill the journal."""
    bucket = TokenBucket(rate_per_s, burst)

    def handler(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        if not bucket.allow():
            return
        suppressed = bucket.take_refused()
        if suppressed:
            context = {**context, "message": f"{context.get('message')} ({suppressed} more)"}
        loop.default_exception_handler(context)

    loop.set_exception_handler(handler)
