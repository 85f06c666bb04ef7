"""Who may talk to a local HTTP surface: the Host, Origin and content-type rules shared by the
daemon's health server and the peer's ``/_rtedge/`` routes.

A kiosk's browser shares the machine, so "listening on loopback" is no protection by itself: any
page it shows can send requests to 127.0.0.1. Three rules close that door:

- ``Host`` must name this server (a loopback name, the listen address, or a configured name).
  A DNS-rebinding page reaches us under its own name and is refused before any route runs.
- A request carrying ``Origin`` (every cross-origin fetch and form post from a browser, and
  same-origin POSTs) is refused unless the origin is our own or explicitly allowed. ``Origin:
  null`` (sandboxed frames, ``file://``) is foreign. Tools such as curl send no Origin.
- State-changing requests refuse the content types an HTML form can send without CORS
  (``text/plain``, urlencoded, multipart), so even a browser that leaked no Origin cannot post
  a form at us; and their bodies are capped before anything reads them.

Foreign CORS preflights get 403 with no ``Access-Control-*`` permission at all.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Final

from aiohttp import web
from aiohttp.typedefs import Middleware

from rtedge.ratelimit import TokenBucket

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

LOOPBACK_NAMES: Final = frozenset({"localhost", "localhost.localdomain", "ip6-localhost"})
#: What an HTML ``<form>`` (or a no-cors fetch) can send without a CORS preflight.
FORM_CONTENT_TYPES: Final = frozenset(
    {"text/plain", "application/x-www-form-urlencoded", "multipart/form-data"}
)
SAFE_METHODS: Final = frozenset({"GET", "HEAD"})
DEFAULT_MAX_BODY: Final = 64 * 1024


def split_host(value: str) -> str | None:
    """The host part of a ``Host`` header value, lower case, without port or brackets; None
    when it is not a plausible host."""
    value = value.strip().lower()
    if not value or any(c in value for c in "/@\\ \t"):
        return None
    if value.startswith("["):
        end = value.find("]")
        if end < 0 or (value[end + 1 :] and not _port(value[end + 1 :])):
            return None
        return value[1:end]
    if value.count(":") == 1:
        host, _, port = value.partition(":")
        return host if host and _port(":" + port) else None
    return value if ":" not in value else None


def _port(suffix: str) -> bool:
    return suffix.startswith(":") and suffix[1:].isdigit() and len(suffix) <= 6


def is_loopback_name(host: str) -> bool:
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def normalize_origin(origin: str) -> str:
    return origin.strip().lower().rstrip("/")


@dataclass(frozen=True)
class GuardPolicy:
    """The rules of one server. ``hosts``: extra names accepted in ``Host`` besides loopback
    ones (the listen address, ``allowed_hosts``). ``origins``: foreign origins allowed in
    (``scheme://host[:port]``), each also granted CORS."""

    hosts: frozenset[str] = frozenset()
    origins: frozenset[str] = frozenset()
    max_body_bytes: int = DEFAULT_MAX_BODY
    json_only: bool = False
    """State-changing requests with a body must send ``application/json`` (the peer's admin)."""
    refused: dict[str, int] = field(default_factory=dict, compare=False)
    """Refusals by reason, for metrics and tests."""
    log_budget: TokenBucket = field(default_factory=lambda: TokenBucket(0.2, 5), compare=False)
    """A page can send thousands of refused requests: a few log lines a minute say so."""

    @classmethod
    def build(
        cls,
        listen_host: str | None,
        allowed_hosts: Iterable[str] = (),
        allowed_origins: Iterable[str] = (),
        **kw: object,
    ) -> GuardPolicy:
        hosts = {h.strip().lower().strip("[]") for h in allowed_hosts if h.strip()}
        # A wildcard bind is not a name anyone uses in a URL; it admits nothing by itself.
        if listen_host and listen_host not in ("0.0.0.0", "::", ""):
            hosts.add(listen_host.lower().strip("[]"))
        origins = {normalize_origin(o) for o in allowed_origins if o.strip()}
        return cls(frozenset(hosts), frozenset(origins), **kw)  # type: ignore[arg-type]

    def host_ok(self, host_header: str | None) -> bool:
        if not host_header:
            return False
        host = split_host(host_header)
        return host is not None and (is_loopback_name(host) or host in self.hosts)

    def origin_ok(self, origin: str, host_header: str) -> bool:
        origin = normalize_origin(origin)
        if origin == "null":
            return False
        # Our own origin: the page came from this very server (same scheme-less host:port).
        if origin == f"http://{host_header.strip().lower()}":
            return True
        return origin in self.origins

    def count(self, reason: str) -> None:
        self.refused[reason] = self.refused.get(reason, 0) + 1


#: Builds a refusal: (status, reason, message) -> response. The peer answers in OpenAI's
#: error envelope; the daemon with a small JSON object.
Render = Callable[[int, str, str], web.Response]


def plain_refusal(status: int, reason: str, message: str) -> web.Response:
    return web.json_response({"error": message, "reason": reason}, status=status)


def _refuse(policy: GuardPolicy, status: int, reason: str, message: str) -> tuple[int, str, str]:
    policy.count(reason)
    return status, reason, message


def _log_refusal(policy: GuardPolicy, request: web.Request, status: int, reason: str) -> None:
    if not policy.log_budget.allow():
        return
    more = policy.log_budget.take_refused()
    log.warning(
        "refused %s %s (%d %s; Host %r, Origin %r)%s",
        request.method,
        request.path[:80],
        status,
        reason,
        (request.headers.get("Host") or "")[:80],
        (request.headers.get("Origin") or "")[:80],
        f" [{more} more refusals not logged]" if more else "",
    )


async def _send_and_close(request: web.Request, resp: web.Response) -> web.Response:
    """Answer, then end the connection without reading the body: aiohttp would otherwise drain
    an unread body for up to ``lingering_time`` (a 50 MB upload read for nothing)."""
    await resp.prepare(request)
    await resp.write_eof()
    protocol = request.protocol
    if protocol is not None:
        protocol.force_close()  # the transport flushes the answer, then closes
    return resp


def check(policy: GuardPolicy, request: web.Request) -> tuple[int, str, str] | None:
    """The refusal for ``request`` (status, reason, message), or None when it may proceed."""
    host = request.headers.get("Host")
    if not policy.host_ok(host):
        return _refuse(policy, 403, "host", "Host not allowed")
    assert host is not None
    origin = request.headers.get("Origin")
    if origin is not None and not policy.origin_ok(origin, host):
        return _refuse(policy, 403, "origin", "Origin not allowed")
    if request.method in SAFE_METHODS or request.method == "OPTIONS":
        return None
    length = request.content_length
    if length is not None and length > policy.max_body_bytes:
        return _refuse(policy, 413, "body_size", "request body too large")
    ctype = request.content_type if request.headers.get("Content-Type") else ""
    if ctype in FORM_CONTENT_TYPES:
        return _refuse(policy, 415, "form_content_type", f"content type {ctype} refused")
    if policy.json_only and ctype not in ("", "application/json"):
        return _refuse(policy, 415, "content_type", "send application/json")
    if policy.json_only and not ctype and (length or request.body_exists):
        return _refuse(policy, 415, "content_type", "send application/json")
    return None


def middleware(
    policy: GuardPolicy,
    applies: Callable[[str], bool] = lambda _: True,
    render: Render = plain_refusal,
) -> Middleware:
    """aiohttp middleware enforcing ``policy`` on every path for which ``applies`` is true."""

    @web.middleware
    async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
        if not applies(request.path):
            return await handler(request)
        refusal = check(policy, request)
        if refusal is not None:
            _log_refusal(policy, request, refusal[0], refusal[1])
            # No Access-Control-* header: a foreign page learns nothing, not even the status.
            resp = render(*refusal)
            resp.force_close()
            return await _send_and_close(request, resp)
        origin = request.headers.get("Origin")
        if request.method == "OPTIONS":
            if origin is None:
                return await handler(request)
            # Only an allowed origin reaches here: a preflight answered with permission.
            return web.Response(
                status=204,
                headers={
                    "Access-Control-Allow-Origin": origin,
                    "Access-Control-Allow-Methods": "GET, POST",
                    "Access-Control-Allow-Headers": "Content-Type",
                    "Access-Control-Max-Age": "600",
                    "Vary": "Origin",
                },
            )
        response = await handler(request)
        if origin is not None and normalize_origin(origin) in policy.origins:
            response.headers["Access-Control-Allow-Origin"] = origin
            response.headers["Vary"] = "Origin"
        return response

    return guard
