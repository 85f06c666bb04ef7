"""GPT-Live signaling: the JSON create request and its answer.

GPT-Live signaling: the JSON create request (``POST /v1/live/sessions``, project key only, 201
JSON answer) and what it carries. Failures are sorted as for the Realtime API (signaling.py)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import aiohttp

from rtedge.logs import event as log_event
from rtedge.realtime.signaling import Answer, Signaling, SignalingError
from rtedge.settings import RealtimeSettings

log = logging.getLogger(__name__)

JsonDict = dict[str, Any]


def build_session(
    rt: RealtimeSettings,
    input_items: Sequence[JsonDict] = (),
    tools: Sequence[JsonDict] = (),
) -> JsonDict:
    """The ``session`` object of the create request (``MediaSessionConfigParam``): only fields
    set on purpose, since the service refuses unknown ones. ``input_items`` is the startup
    history (``session.input``: text messages, shape ``InitialItemParam``); ``tools`` are
    function tools run through Responses delegation."""
    live = rt.live
    session: JsonDict = {"model": rt.model, "audio": {"output": {"voice": rt.voice}}}
    if rt.instructions:
        session["instructions"] = rt.instructions
    if input_items:
        session["input"] = [dict(item) for item in input_items]
    if tools:
        session["delegation"] = {
            "type": "responses",
            "responses": {
                "model": live.backend_model,
                "tools": [dict(t) for t in tools],
                "parallel_tool_calls": False,
            },
        }
    if live.store:
        session["store"] = True
    if live.safety_identifier:
        session["safety_identifier"] = live.safety_identifier
    if live.idle_timeout_s is not None:
        session["idle_timeout_s"] = live.idle_timeout_s
        policy: JsonDict = {"type": "speech"}
        if live.wake_vad_threshold is not None:
            policy["vad_threshold"] = live.wake_vad_threshold
        session["wake_policy"] = policy
    return session


class LiveSignaling(Signaling):
    """``create_call`` posts the JSON create; there is no hangup endpoint (``session.close`` on
    the channel ends a session: rtedge.live.call)."""

    async def create_call(self, offer_sdp: str, session: dict[str, Any]) -> Answer:
        key = self._settings.api_key
        if key is None or not key.get_secret_value():
            raise SignalingError("auth", "GPT-Live needs realtime.api_key (a project key)")
        body = {"session": session, "transport": {"type": "webrtc", "sdp": offer_sdp}}
        headers = {"Authorization": f"Bearer {key.get_secret_value()}"}
        try:
            async with self._http.post(
                self._settings.url, json=body, headers=headers, timeout=self._timeout
            ) as resp:
                text = await resp.text()
                self._raise_for(resp, text, "live session")
                return _answer(await _json(resp), resp.status)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise self._network_error(exc, "live session") from None

    async def hangup(self, call_id: str, reason: str) -> None:
        log_event(
            log, logging.INFO, "hangup", "live session %s ended: %s", call_id, reason, reason=reason
        )


async def _json(resp: aiohttp.ClientResponse) -> Any:
    try:
        return await resp.json(content_type=None)
    except ValueError:
        raise SignalingError("server", "answer is not JSON", status=resp.status) from None


def _answer(data: Any, status: int) -> Answer:
    transport = data.get("transport") if isinstance(data, dict) else None
    sdp = transport.get("sdp") if isinstance(transport, dict) else None
    if not isinstance(sdp, str) or "v=0" not in sdp:
        raise SignalingError("server", "answer has no transport.sdp", status=status)
    session = data.get("session")
    sid = session.get("id") if isinstance(session, dict) else None
    return Answer(sdp=sdp, call_id=sid if isinstance(sid, str) and sid else None)
