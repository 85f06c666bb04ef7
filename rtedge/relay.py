"""``rtedge relay``: the owner's server that holds the project key so kiosks need not.

Devices POST their create request here with a per-device token instead of the key: GPT-Live's
JSON ``POST /v1/live/sessions`` and the Realtime calls API's ``POST /v1/realtime/calls`` (raw SDP
or multipart, the unified interface) plus its hangup. The relay swaps the token for the key and
forwards the request upstream unchanged. Tokens are kept hashed in a file (one ``name sha256``
line each); revoking a device removes its line and its next request gets 401.
Every route checks Host and Origin (a browser on a kiosk can reach this server too).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import aiohttp
from aiohttp import web

from rtedge.httpguard import GuardPolicy, Handler
from rtedge.logs import event as log_event

log = logging.getLogger(__name__)

MAX_BODY: Final = 256 * 1024
#: Response headers passed back to the device (the call's URL, the session id, rate limits).
PASSED_HEADERS: Final = ("Content-Type", "Location", "Retry-After", "X-Session-Id")
_FORWARDED: Final = (
    ("POST", "/v1/live/sessions"),
    ("POST", "/v1/realtime/calls"),
    ("POST", "/v1/realtime/calls/{call_id}/hangup"),
)


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


@dataclass
class TokenBook:
    """Device tokens, hashed, in a file the owner edits with ``rtedge relay --mint/--revoke``;
    re-read when it changes, so a revocation takes effect on the next request."""

    path: Path
    _mtime: float | None = None
    _tokens: dict[str, str] = field(default_factory=dict)  # digest -> device name

    def _load(self) -> None:
        try:
            mtime = self.path.stat().st_mtime_ns
        except FileNotFoundError:
            self._tokens, self._mtime = {}, None
            return
        if mtime == self._mtime:
            return
        tokens = {}
        for line in self.path.read_text().splitlines():
            parts = line.split()
            if len(parts) == 2 and not line.startswith("#"):
                tokens[parts[1]] = parts[0]
        self._tokens, self._mtime = tokens, mtime

    def device(self, authorization: str | None) -> str | None:
        """The device a ``Bearer`` token belongs to, or None."""
        if not authorization or not authorization.startswith("Bearer "):
            return None
        self._load()
        digest = _digest(authorization[7:].strip())
        for known, name in self._tokens.items():
            if hmac.compare_digest(known, digest):
                return name
        return None

    def mint(self, name: str) -> str:
        if not name.isidentifier() and not name.replace("-", "_").isidentifier():
            raise ValueError("a device name is letters, digits, '-' and '_'")
        self.revoke(name)
        token = "rtr_" + secrets.token_urlsafe(32)
        with self.path.open("a") as f:
            f.write(f"{name} {_digest(token)}\n")
        self.path.chmod(0o600)
        return token

    def revoke(self, name: str) -> bool:
        if not self.path.exists():
            return False
        lines = self.path.read_text().splitlines()
        kept = [ln for ln in lines if ln.split()[:1] != [name]]
        self.path.write_text("".join(f"{ln}\n" for ln in kept))
        return len(kept) != len(lines)


def create_app(upstream: str, key: str, tokens: TokenBook, policy: GuardPolicy) -> web.Application:
    """The relay as an aiohttp app. ``upstream``: the service's base URL (``https://api.openai.com``)."""

    @web.middleware
    async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
        host = request.headers.get("Host")
        origin = request.headers.get("Origin")
        if not policy.host_ok(host) or (
            origin is not None and host is not None and not policy.origin_ok(origin, host)
        ):
            return _error(403, "Host or Origin not allowed.", "forbidden")
        return await handler(request)

    app = web.Application(client_max_size=MAX_BODY, middlewares=[guard])
    session: dict[str, aiohttp.ClientSession] = {}

    async def forward(request: web.Request) -> web.StreamResponse:
        device = tokens.device(request.headers.get("Authorization"))
        if device is None:
            log_event(log, logging.WARNING, "relay_refused", "relay: unknown or revoked token")
            return _error(401, "Unknown or revoked device token.", "invalid_api_key")
        body = await request.read()
        headers = {"Authorization": f"Bearer {key}"}
        if request.headers.get("Content-Type"):
            headers["Content-Type"] = request.headers["Content-Type"]
        url = upstream.rstrip("/") + request.path
        http = session.get("http")
        if http is None:
            http = session["http"] = aiohttp.ClientSession()
        try:
            async with http.post(
                url, data=body, headers=headers, timeout=aiohttp.ClientTimeout(total=30)
            ) as resp:
                data = await resp.read()
                passed = {h: resp.headers[h] for h in PASSED_HEADERS if h in resp.headers}
                log_event(
                    log,
                    logging.INFO,
                    "relay",
                    "relay: %s %s for %s -> %d",
                    request.method,
                    request.path,
                    device,
                    resp.status,
                    device=device,
                )
                return web.Response(status=resp.status, body=data, headers=passed)
        except (aiohttp.ClientError, TimeoutError) as exc:
            return _error(502, f"Upstream unreachable: {type(exc).__name__}.", "bad_gateway")

    async def close(_: web.Application) -> None:
        if "http" in session:
            await session["http"].close()

    for method, path in _FORWARDED:
        app.router.add_route(method, path, forward)
    app.on_cleanup.append(close)
    return app


def _error(status: int, message: str, code: str) -> web.Response:
    etype = "invalid_request_error" if status < 500 else "server_error"
    return web.json_response(
        {"error": {"message": message, "type": etype, "code": code, "param": None}}, status=status
    )
