"""Signaling requests, byte for byte as PROTOCOL.md §1 says OpenAI and rtAV take them.

OpenAI's servers cannot run here, so a small aiohttp server on loopback records what the client
sends and answers the way the docs say OpenAI answers; the request shapes are checked against the
``openai`` package's own models.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from openai.types.realtime import ClientSecretCreateParams, RealtimeSessionCreateRequest
from pydantic import TypeAdapter

from rtedge.realtime.session_shape import build_session
from rtedge.realtime.signaling import Signaling, SignalingError
from rtedge.settings import RealtimeSettings

OFFER = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n"
ANSWER = "v=0\r\no=- 2 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n"
KEY = "sk-test-abcdefghijklmnop1234"


class Recorder:
    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.status: dict[str, tuple[int, dict[str, str], str]] = {}

    async def handle(self, request: web.Request) -> web.Response:
        entry: dict[str, Any] = {
            "path": request.path,
            "method": request.method,
            "headers": dict(request.headers),
            "content_type": request.content_type,
        }
        if request.content_type.startswith("multipart/"):
            parts = {}
            reader = await request.multipart()
            async for part in reader:
                assert isinstance(part, aiohttp.BodyPartReader)
                parts[part.name] = (part.headers.get("Content-Type"), await part.text())
            entry["parts"] = parts
        else:
            entry["body"] = await request.text()
        self.requests.append(entry)
        override = self.status.get(request.path)
        if override:
            status, headers, body = override
            return web.Response(status=status, headers=headers, text=body)
        if request.path.endswith("/client_secrets"):
            return web.json_response(
                {"value": "ek_test_ephemeral", "expires_at": 1, "session": {"type": "realtime"}}
            )
        if request.path.endswith("/hangup"):
            return web.Response(status=200)
        return web.Response(
            status=201,
            text=ANSWER,
            content_type="application/sdp",
            headers={"Location": "/v1/realtime/calls/rtc_u1_abc123"},
        )


@pytest.fixture
async def server() -> AsyncIterator[tuple[Recorder, str]]:
    rec = Recorder()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", rec.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield rec, f"http://127.0.0.1:{port}/v1/realtime/calls"
    await runner.cleanup()


def settings(url: str, **kw: Any) -> RealtimeSettings:
    return RealtimeSettings.model_validate({"url": url, "api_key": KEY, **kw})


async def test_openai_ephemeral_flow_shapes(server: tuple[Recorder, str]) -> None:
    rec, url = server
    s = settings(url, provider="openai")
    session = build_session(s)
    RealtimeSessionCreateRequest.model_validate(session)  # GA shape, as the SDK defines it
    async with aiohttp.ClientSession() as http:
        answer = await Signaling(s, http).create_call(OFFER, session)
    assert answer.sdp == ANSWER
    assert answer.call_id == "rtc_u1_abc123"
    secret, call = rec.requests
    assert secret["path"] == "/v1/realtime/client_secrets"
    assert secret["headers"]["Authorization"] == f"Bearer {KEY}"
    body = json.loads(secret["body"])
    TypeAdapter(ClientSecretCreateParams).validate_python(body)
    assert body["expires_after"] == {"anchor": "created_at", "seconds": 600}
    assert body["session"]["type"] == "realtime"
    assert body["session"]["audio"]["input"]["turn_detection"] is None  # push-to-talk
    assert "OpenAI-Beta" not in secret["headers"]
    assert call["path"] == "/v1/realtime/calls"
    assert call["content_type"] == "application/sdp"
    assert call["headers"]["Authorization"] == "Bearer ek_test_ephemeral"
    assert call["body"] == OFFER
    assert "?" not in call["path"]


async def test_unified_multipart_shapes(server: tuple[Recorder, str]) -> None:
    rec, url = server
    s = settings(url, provider="openai", signaling="unified")
    session = build_session(s)
    async with aiohttp.ClientSession() as http:
        await Signaling(s, http).create_call(OFFER, session)
    (call,) = rec.requests
    assert call["content_type"] == "multipart/form-data"
    assert call["headers"]["Authorization"] == f"Bearer {KEY}"
    sdp_type, sdp = call["parts"]["sdp"]
    assert sdp_type == "application/sdp"
    assert sdp == OFFER
    session_type, session_json = call["parts"]["session"]
    assert session_type == "application/json"
    assert json.loads(session_json) == session


async def test_rtav_flat_session_and_session_id(server: tuple[Recorder, str]) -> None:
    rec, url = server
    rec.status["/v1/realtime/calls"] = (201, {"X-Session-Id": "sess_rtav_9"}, ANSWER)
    s = settings(
        url, provider="rtav", voice="default", session={"face": "face1", "driving": "idle"}
    )
    session = build_session(s, want_images=True)
    assert session == {
        "type": "realtime",
        "model": "gpt-realtime-2",
        "instructions": s.instructions,
        "voice": "default",
        "modalities": ["audio", "text", "image"],
        "turn_detection": None,
        "face": "face1",
        "driving": "idle",
    }
    async with aiohttp.ClientSession() as http:
        answer = await Signaling(s, http).create_call(OFFER, session)
    assert answer.call_id == "sess_rtav_9"
    assert rec.requests[0]["content_type"] == "multipart/form-data"  # rtAV: unified by default


async def test_token_url_backend_and_hangup(server: tuple[Recorder, str]) -> None:
    rec, url = server
    token_url = url.replace("/v1/realtime/calls", "/device-token")
    rec.status["/device-token"] = (200, {}, json.dumps({"client_secret": "ek_from_backend"}))
    s = RealtimeSettings.model_validate({"url": url, "token_url": token_url})
    async with aiohttp.ClientSession() as http:
        sig = Signaling(s, http)
        answer = await sig.create_call(OFFER, build_session(s))
        await sig.hangup("rtc_x", "test")  # no standard key: nothing to send
    assert [r["path"] for r in rec.requests] == ["/device-token", "/v1/realtime/calls"]
    assert rec.requests[1]["headers"]["Authorization"] == "Bearer ek_from_backend"
    assert answer.call_id == "rtc_u1_abc123"
    s2 = settings(url)
    async with aiohttp.ClientSession() as http:
        await Signaling(s2, http).hangup("rtc_u1_abc123", "test")
    assert rec.requests[-1]["path"] == "/v1/realtime/calls/rtc_u1_abc123/hangup"
    assert rec.requests[-1]["headers"]["Authorization"] == f"Bearer {KEY}"


@pytest.mark.parametrize(
    ("status", "headers", "kind", "retry_after"),
    [
        (401, {}, "auth", None),
        (403, {}, "auth", None),
        (429, {"Retry-After": "7"}, "rate_limited", 7.0),
        (500, {}, "server", None),
        (503, {}, "server", None),
        (400, {}, "rejected", None),
    ],
)
async def test_failures_are_sorted_and_never_carry_the_key(
    server: tuple[Recorder, str],
    status: int,
    headers: dict[str, str],
    kind: str,
    retry_after: float | None,
) -> None:
    rec, url = server
    # A service that echoes the key back in its error must not get it into our message.
    body = json.dumps(
        {"error": {"message": f"Incorrect API key provided: {KEY}", "code": "invalid_api_key"}}
    )
    rec.status["/v1/realtime/calls"] = (status, headers, body)
    s = settings(url, signaling="unified")
    async with aiohttp.ClientSession() as http:
        with pytest.raises(SignalingError) as info:
            await Signaling(s, http).create_call(OFFER, build_session(s))
    assert info.value.kind == kind
    assert info.value.status == status
    assert info.value.retry_after == retry_after
    assert KEY not in str(info.value)
    assert KEY[:8] not in str(info.value)
    assert "invalid_api_key" in str(info.value)


async def test_refused_connection_is_a_network_failure() -> None:
    s = settings("http://127.0.0.1:9/v1/realtime/calls", signaling="unified")
    async with aiohttp.ClientSession() as http:
        with pytest.raises(SignalingError) as info:
            await Signaling(s, http).create_call(OFFER, build_session(s))
    assert info.value.kind == "network"
    assert KEY not in str(info.value)


@pytest.mark.parametrize("key", [KEY, ""])
async def test_raw_signaling_posts_the_sdp_with_the_key_or_none(
    server: tuple[Recorder, str], key: str
) -> None:
    rec, url = server
    s = settings(url, signaling="raw", api_key=key)
    async with aiohttp.ClientSession() as http:
        answer = await Signaling(s, http).create_call(OFFER, build_session(s))
    assert answer.sdp == ANSWER and answer.call_id == "rtc_u1_abc123"
    assert answer.location == url.removesuffix("/v1/realtime/calls") + (
        "/v1/realtime/calls/rtc_u1_abc123"
    )
    (call,) = rec.requests  # no client_secrets, no multipart
    assert call["path"] == "/v1/realtime/calls" and call["method"] == "POST"
    assert call["content_type"] == "application/sdp" and call["body"] == OFFER
    if key:
        assert call["headers"]["Authorization"] == f"Bearer {key}"
    else:
        assert "Authorization" not in call["headers"]


def test_empty_key_only_with_raw_signaling() -> None:
    from pydantic import ValidationError

    RealtimeSettings.model_validate({"api_key": "", "signaling": "raw"})
    with pytest.raises(ValidationError, match="api_key"):
        RealtimeSettings.model_validate({"api_key": ""})


async def test_hangup_falls_back_to_delete_on_the_location(
    server: tuple[Recorder, str], caplog: pytest.LogCaptureFixture
) -> None:
    rec, url = server
    rec.status["/v1/realtime/calls/rtc_u1_abc123/hangup"] = (404, {}, "")
    s = settings(url, signaling="raw", api_key="")
    caplog.set_level("INFO", logger="rtedge.realtime.signaling")
    async with aiohttp.ClientSession() as http:
        sig = Signaling(s, http)
        await sig.create_call(OFFER, build_session(s))
        await sig.hangup("rtc_u1_abc123", "rotation")
    hangup, delete = rec.requests[1:]
    assert (hangup["method"], hangup["path"]) == ("POST", "/v1/realtime/calls/rtc_u1_abc123/hangup")
    assert (delete["method"], delete["path"]) == ("DELETE", "/v1/realtime/calls/rtc_u1_abc123")
    assert "Authorization" not in delete["headers"]
    assert "hanging up call rtc_u1_abc123: rotation" in caplog.text
