"""The peer's HTTP API, shaped like OpenAI's: ``POST /v1/realtime/calls`` (raw SDP or
multipart ``sdp`` + ``session``), ``POST /v1/realtime/client_secrets`` and
``POST /v1/realtime/calls/{id}/hangup``; GPT-Live's ``POST /v1/live/sessions`` is
``rtedge.peer.live_http``.
Loopback-only test routes live under ``/_rtedge/`` (``rtedge.peer.admin``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import Any, Final

from aiohttp import web

from rtedge import httpguard
from rtedge.httpguard import GuardPolicy
from rtedge.peer import admin, sessionconf, wire
from rtedge.peer.call import Call
from rtedge.peer.config import PeerConfig
from rtedge.peer.faults import FaultBook, HttpFault
from rtedge.peer.httputil import (
    ApiError,
    Handler,
    cors_middleware,
    error_response,
    errors_middleware,
    parse_json,
    read_json,
)
from rtedge.peer.keys import DEFAULT_TTL_S, MAX_TTL_S, MIN_TTL_S, AuthError, KeyStore
from rtedge.peer.offer import InvalidOffer
from rtedge.peer.registry import Registry
from rtedge.peer.sessionconf import SessionError
from rtedge.peer.voice import Voice
from rtedge.rtc.ice import use_host_addresses

JsonDict = dict[str, Any]
SDP_TYPE: Final = "application/sdp"

log = logging.getLogger(__name__)


@dataclass
class Peer:
    """The state one app holds: config, keys, faults, calls, and the shared voice."""

    config: PeerConfig
    keys: KeyStore = field(init=False)
    faults: FaultBook = field(default_factory=FaultBook)
    registry: Registry = field(init=False)
    voice: Voice = field(init=False)

    def __post_init__(self) -> None:
        self.keys = KeyStore(self.config.api_keys)
        self.registry = Registry(self.config.ended_calls_kept)
        self.voice = Voice(self.config.voice_engine)

    def new_session(self, updates: list[JsonDict], model: str | None = None) -> JsonDict:
        expires_at = int(time.time() + self.config.max_session_s)
        effective = sessionconf.default_session(
            wire.new_id("sess"),
            self.config.default_model,
            self.config.default_instructions,
            expires_at,
        )
        if model:
            effective["model"] = model
        for update in updates:
            effective = sessionconf.merge(effective, update)
        return effective


PEER: Final = web.AppKey("rtedge_peer", Peer)


def create_app(config: PeerConfig | None = None) -> web.Application:
    """The peer as an aiohttp application. Cleaning the app up ends every call."""
    config = config or PeerConfig()
    peer = Peer(config)

    @web.middleware
    async def count(request: web.Request, handler: Handler) -> web.StreamResponse:
        # Refusals are what a client's backoff is judged by (GET /_rtedge/stats).
        response = await handler(request)
        if request.path.startswith("/v1/") and request.method != "OPTIONS":
            peer.registry.http_requests += 1
            if response.status >= 400:
                peer.registry.http_refused += 1
        return response

    # The admin routes take the daemon's rules: a page in a browser on this machine must not
    # drive fault injection (Host, Origin, and JSON bodies only).
    admin_guard = httpguard.middleware(
        GuardPolicy.build(None, json_only=True, max_body_bytes=config.max_body_bytes),
        applies=lambda path: path.startswith("/_rtedge/"),
        render=_refusal,
    )
    app = web.Application(
        client_max_size=config.max_body_bytes,
        middlewares=[admin_guard, cors_middleware, count, errors_middleware],
    )
    app[PEER] = peer
    app.router.add_post("/v1/realtime/calls", handle_calls)
    if config.profile == "minimal":  # raw SDP only; hangup by DELETE on the call's Location
        app.router.add_delete("/v1/realtime/calls/{call_id}", handle_hangup)
    else:
        app.router.add_post("/v1/realtime/client_secrets", handle_client_secrets)
        app.router.add_post("/v1/realtime/calls/{call_id}/hangup", handle_hangup)
    admin.add_routes(app, peer.faults, peer.registry)
    from rtedge.peer import live_http  # here: it builds on this module's helpers

    live_http.add_routes(app)  # POST /v1/live/sessions
    app.on_startup.append(_startup)
    app.on_shutdown.append(_shutdown)
    return app


_REFUSAL_CODES: Final = {413: "request_too_large", 415: "unsupported_content_type"}


def _refusal(status: int, reason: str, message: str) -> web.Response:
    return error_response(ApiError(status, f"{message}.", _REFUSAL_CODES.get(status, "forbidden")))


async def _startup(app: web.Application) -> None:
    peer = app[PEER]
    if peer.config.ice_hosts is not None:
        # aioice never offers 127.0.0.1 itself; process-wide, so it is set, not scoped.
        use_host_addresses(list(peer.config.ice_hosts))
    log.info("voice: %s; mode: %s", peer.voice.engine, peer.config.mode)


async def _shutdown(app: web.Application) -> None:
    await app[PEER].registry.close_all("server_shutdown")


# -- faults ----------------------------------------------------------------------------------
async def _http_fault(peer: Peer, endpoint: str) -> None:
    """Apply the next pending HTTP fault for this endpoint, if any."""
    fault = peer.faults.take(endpoint)
    if fault is None:
        return
    if fault.slow_answer_s:
        await asyncio.sleep(fault.slow_answer_s)
        return
    raise _fault_error(fault)


def _fault_error(fault: HttpFault) -> ApiError:
    status = fault.http_status or 500
    headers = {}
    if fault.retry_after is not None:
        headers["Retry-After"] = f"{fault.retry_after:g}"
    if status == 401:
        return ApiError(401, "Incorrect API key provided.", "invalid_api_key", headers=headers)
    if status == 429:
        return ApiError(
            429,
            "Rate limit reached for requests. Please try again later.",
            "rate_limit_exceeded",
            etype="requests",
            headers=headers,
        )
    if status >= 500:
        return ApiError(
            status,
            "The server had an error while processing your request. Sorry about that!",
            None,
            etype="server_error",
            headers=headers,
        )
    return ApiError(status, f"Injected fault: HTTP {status}.", "injected_fault", headers=headers)


def _auth(peer: Peer, request: web.Request, allow_ephemeral: bool = True) -> Any:
    try:
        return peer.keys.check(
            request.headers.get("Authorization"), allow_ephemeral=allow_ephemeral
        )
    except AuthError as exc:
        raise ApiError(401, str(exc), "invalid_api_key") from None


def _session_update(raw: Any) -> JsonDict:
    try:
        return sessionconf.validate_update(raw, "session")
    except SessionError as err:
        raise ApiError(400, err.message, err.code, err.param) from None


# -- POST /v1/realtime/calls -------------------------------------------------------------------
async def handle_calls(request: web.Request) -> web.Response:
    peer = request.app[PEER]
    await _http_fault(peer, "calls")
    minimal = peer.config.profile == "minimal"
    if minimal and not peer.keys.strict and "Authorization" not in request.headers:
        auth = None  # such servers may run without keys
    else:
        auth = _auth(peer, request)
    pending = peer.registry.pending()
    if pending >= peer.config.max_pending_calls:
        # Offers answered but never connected hold a port, a DTLS context and timers each.
        raise ApiError(
            429,
            f"Too many calls still connecting ({pending}). Please try again later.",
            "rate_limit_exceeded",
            etype="requests",
            headers={"Retry-After": "2"},
        )
    length = request.content_length
    if length is not None and length > peer.config.max_body_bytes:
        raise ApiError(413, "Request body too large.", "request_too_large")
    updates: list[JsonDict] = []
    if auth is not None and auth.ephemeral is not None:
        updates.append(auth.ephemeral.session)
    ctype = request.content_type
    if ctype == SDP_TYPE:
        sdp = _text(await request.read(), "sdp")
    elif ctype == "multipart/form-data" and not minimal:
        sdp, session = await _read_form(request)
        if session is not None:
            updates.append(session)
    else:
        raise ApiError(
            415,
            f"Unsupported content type {ctype!r}: send the SDP offer as application/sdp, or "
            "multipart/form-data with parts 'sdp' and 'session'.",
            "unsupported_content_type",
        )
    model = request.query.get("model")
    effective = peer.new_session(updates, model)
    call = Call(peer.config, peer.voice, effective, peer.registry.on_end)
    peer.registry.add(call)
    try:
        answer = await call.answer(sdp)
    except InvalidOffer as exc:
        log.info("invalid offer: %s", exc)
        await call.close("invalid_offer")
        raise ApiError(
            400,
            "Invalid SDP offer. Please try again with a WHIP-compliant offer.",
            "invalid_offer",
            "sdp",
        ) from None
    except BaseException:
        await asyncio.shield(call.close("error"))
        raise
    log.info("call %s started (session %s)", call.id, call.session_id)
    return web.Response(
        status=201,
        body=answer.encode("utf-8"),
        content_type=SDP_TYPE,
        headers={
            "Location": f"/v1/realtime/calls/{call.id}",
            "X-Session-Id": call.session_id,
        },
    )


async def _read_form(request: web.Request) -> tuple[str, JsonDict | None]:
    try:
        form = await request.post()
    except web.HTTPException:
        raise  # 413 stays 413
    except Exception as exc:  # aiohttp's parser errors: a malformed body, not a server fault
        raise ApiError(
            400, f"Malformed multipart/form-data body: {exc}", "invalid_request_body"
        ) from None
    sdp_part = form.get("sdp")
    if sdp_part is None:
        raise ApiError(
            400, "Missing required parameter: 'sdp'.", "missing_required_parameter", "sdp"
        )
    sdp = _text(sdp_part, "sdp")
    session_part = form.get("session")
    if session_part is None:
        return sdp, None
    return sdp, _session_update(parse_json(_text(session_part, "session"), "session"))


def _text(part: Any, name: str) -> str:
    if isinstance(part, str):
        return part
    if isinstance(part, bytes | bytearray):
        try:
            return bytes(part).decode("utf-8")
        except UnicodeDecodeError:
            if name == "sdp":
                raise ApiError(
                    400,
                    "Invalid SDP offer. Please try again with a WHIP-compliant offer.",
                    "invalid_offer",
                    "sdp",
                ) from None
            raise ApiError(400, f"The '{name}' part is not UTF-8.", "invalid_value", name) from None
    file = getattr(part, "file", None)
    if file is not None:
        return _text(file.read(), name)
    raise ApiError(400, f"The '{name}' part is not text.", "invalid_value", name)


# -- POST /v1/realtime/client_secrets ----------------------------------------------------------
async def handle_client_secrets(request: web.Request) -> web.Response:
    peer = request.app[PEER]
    await _http_fault(peer, "client_secrets")
    _auth(peer, request, allow_ephemeral=False)
    if request.content_type not in ("application/json", "application/octet-stream", ""):
        raise ApiError(
            415, "Unsupported content type: send application/json.", "unsupported_content_type"
        )
    body = await read_json(request)
    if body is None:
        body = {}
    if not isinstance(body, dict):
        raise ApiError(400, "The request body must be a JSON object.", "invalid_type")
    for key in body:
        if key not in ("expires_after", "session"):
            raise ApiError(400, f"Unknown parameter: '{key}'.", "unknown_parameter", key)
    ttl = _ttl(body.get("expires_after"))
    update = _session_update(body.get("session", {"type": "realtime"}))
    eph = peer.keys.mint(ttl, update)
    effective = peer.new_session([update])
    effective.pop("expires_at", None)  # the session's cap starts when a call uses the secret
    return web.json_response(
        {"value": eph.value, "expires_at": int(eph.expires_at), "session": effective}
    )


def _ttl(raw: Any) -> int:
    if raw is None:
        return DEFAULT_TTL_S
    if not isinstance(raw, dict):
        raise ApiError(400, "'expires_after' must be an object.", "invalid_type", "expires_after")
    for key in raw:
        if key not in ("anchor", "seconds"):
            raise ApiError(
                400,
                f"Unknown parameter: 'expires_after.{key}'.",
                "unknown_parameter",
                f"expires_after.{key}",
            )
    if raw.get("anchor", "created_at") != "created_at":
        raise ApiError(
            400,
            "Invalid value for 'expires_after.anchor': only 'created_at' is supported.",
            "invalid_value",
            "expires_after.anchor",
        )
    seconds = raw.get("seconds", DEFAULT_TTL_S)
    if (
        not isinstance(seconds, int)
        or isinstance(seconds, bool)
        or not (MIN_TTL_S <= seconds <= MAX_TTL_S)
    ):
        raise ApiError(
            400,
            f"Invalid 'expires_after.seconds': must be an integer {MIN_TTL_S}-{MAX_TTL_S}.",
            "invalid_value",
            "expires_after.seconds",
        )
    return seconds


# -- POST /v1/realtime/calls/{call_id}/hangup --------------------------------------------------
async def handle_hangup(request: web.Request) -> web.Response:
    peer = request.app[PEER]
    if peer.config.profile != "minimal" or peer.keys.strict or "Authorization" in request.headers:
        _auth(peer, request)
    call = peer.registry.find(request.match_info["call_id"])
    if call is None:
        raise ApiError(
            404, "No session found for the provided call_id", "call_id_not_found", "call_id"
        )
    await call.close("hangup")
    return web.json_response({})
