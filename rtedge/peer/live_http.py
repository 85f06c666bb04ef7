"""The peer's GPT-Live route: ``POST /v1/live/sessions`` (JSON create, 201 JSON answer), served
beside ``/v1/realtime/calls`` by the same app. The session object is strict: unknown fields,
``audio.format`` (WebSocket only) and wrong types are refused with 400 and ``param``.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Final

from aiohttp import web
from pydantic import ValidationError

from rtedge.peer import sessionconf, wire
from rtedge.peer.call import Call
from rtedge.peer.httputil import ApiError, read_json
from rtedge.peer.offer import InvalidOffer
from rtedge.peer.server import PEER, Peer, _auth, _http_fault
from rtedge.protocol.strict_live import create_adapter

JsonDict = dict[str, Any]
PATH: Final = "/v1/live/sessions"

log = logging.getLogger(__name__)


def add_routes(app: web.Application) -> None:
    app.router.add_post(PATH, handle_live_sessions)


def validate_create(body: Any) -> JsonDict:
    """The create body, checked against the generated strict models; raises ApiError 400."""
    if not isinstance(body, dict):
        raise ApiError(400, "The request body must be a JSON object.", "invalid_type")
    try:
        model = create_adapter.validate_python(body)
    except ValidationError as exc:
        err = sessionconf.from_validation(exc, body, "")
        raise ApiError(400, err.message, err.code, err.param) from None
    unknown = sessionconf.first_extra(model, "")
    if unknown is not None:
        raise ApiError(400, f"Unknown parameter: '{unknown}'.", "unknown_parameter", unknown)
    if not body["transport"]["sdp"].strip():
        raise ApiError(400, "'transport.sdp' must not be empty.", "invalid_value", "transport.sdp")
    items = body["session"].get("input") or []
    if len(items) > 128:
        raise ApiError(
            400, "'session.input' holds at most 128 items.", "invalid_value", "session.input"
        )
    return body


def session_resource(peer: Peer, session: JsonDict) -> JsonDict:
    """What ``session.started`` reports: the request's session, with id, cap and status."""
    resource = {k: v for k, v in session.items() if k not in ("idle_timeout_s", "wake_policy")}
    resource.update(
        id=wire.new_id("live", 12),
        expires_at=int(time.time() + peer.config.max_session_s),
        status="active",
    )
    resource.setdefault("instructions", peer.config.default_instructions)
    resource.setdefault("audio", {"output": {"voice": "marin"}})
    resource.setdefault("input", [])
    resource.setdefault("store", False)
    return resource


async def handle_live_sessions(request: web.Request) -> web.Response:
    peer = request.app[PEER]
    await _http_fault(peer, "live_sessions")
    _auth(peer, request, allow_ephemeral=False)  # GPT-Live takes project keys only
    if request.content_type != "application/json":
        raise ApiError(
            415,
            f"Unsupported content type {request.content_type!r}: send application/json.",
            "unsupported_content_type",
        )
    pending = peer.registry.pending()
    if pending >= peer.config.max_pending_calls:
        raise ApiError(
            429,
            f"Too many sessions still connecting ({pending}). Please try again later.",
            "rate_limit_exceeded",
            etype="requests",
            headers={"Retry-After": "2"},
        )
    if "model" in request.query:
        raise ApiError(
            400, "Pass the model in 'session.model', not the URL.", "unknown_parameter", "model"
        )
    body = validate_create(await read_json(request))
    resource = session_resource(peer, body["session"])
    call = Call(peer.config, peer.voice, resource, peer.registry.on_end, live=True)
    peer.registry.add(call)
    try:
        answer = await call.answer(body["transport"]["sdp"])
    except InvalidOffer as exc:
        log.info("invalid offer: %s", exc)
        await call.close("invalid_offer")
        raise ApiError(400, "Invalid SDP offer.", "invalid_offer", "transport.sdp") from None
    except BaseException:
        await call.close("error")
        raise
    log.info("live session %s started (call %s)", resource["id"], call.id)
    return web.json_response(
        {"session": {"id": resource["id"]}, "transport": {"type": "webrtc", "sdp": answer}},
        status=201,
    )
