"""The HTTP API: calls (raw SDP and multipart), client secrets, hangup, errors, CORS, faults."""

from __future__ import annotations

import asyncio
import socket
import time
from typing import Any

import aiohttp
import pytest
from openai.types.realtime.client_secret_create_response import ClientSecretCreateResponse

from rtedge.peer import PeerConfig
from rtedge.peer.server import PEER
from tests.peer.client import offer_sdp
from tests.peer.conftest import PeerHandle, start_peer
from tests.poll import until


async def post(
    url: str, data: Any = None, headers: dict[str, str] | None = None, json: Any = None
) -> tuple[int, dict[str, str], Any]:
    async with (
        aiohttp.ClientSession() as http,
        http.post(url, data=data, json=json, headers=headers or {}) as resp,
    ):
        try:
            body: Any = await resp.json(content_type=None)
        except ValueError:
            body = await resp.text()
        return resp.status, dict(resp.headers), body


def assert_error(body: Any, code: str | None, param: str | None = None) -> None:
    err = body["error"]
    assert set(err) == {"message", "type", "code", "param"}
    assert err["message"]
    assert err["code"] == code, err
    if param is not None:
        assert err["param"] == param, err


SDP_HEADERS = {"Authorization": "Bearer sk-test", "Content-Type": "application/sdp"}


async def test_raw_sdp_call_answers_201_with_location_and_session_id(peer: PeerHandle) -> None:
    c = peer.client()
    resp = await c.connect()
    assert resp.status == 201
    assert resp.headers["Content-Type"].startswith("application/sdp")
    location = resp.headers["Location"]
    assert location.startswith("/v1/realtime/calls/rtc_")
    assert c.session_id and c.session_id.startswith("sess_")
    created = c.events[0]
    assert created["type"] == "session.created"
    assert created["session"]["id"] == c.session_id
    assert created["session"]["audio"]["input"]["turn_detection"]["type"] == "server_vad"
    record = await peer.call_record(location.rsplit("/", 1)[-1])
    assert record["active"] and record["label"] == "oai-events"


async def test_multipart_session_is_applied(peer: PeerHandle) -> None:
    session = {
        "type": "realtime",
        "instructions": "Be terse.",
        "output_modalities": ["text"],
        "audio": {"input": {"turn_detection": None}, "output": {"voice": "cedar"}},
    }
    c = await peer.connect(session=session)
    eff = c.events[0]["session"]
    assert eff["instructions"] == "Be terse."
    assert eff["output_modalities"] == ["text"]
    assert eff["audio"]["input"]["turn_detection"] is None
    assert eff["audio"]["output"]["voice"] == "cedar"
    assert eff["audio"]["output"]["format"] == {"type": "audio/pcm", "rate": 24000}  # kept


async def test_multipart_urlencoded_is_refused_415(peer: PeerHandle) -> None:
    sdp = await offer_sdp()
    status, _, body = await post(
        f"{peer.url}/v1/realtime/calls",
        data={"sdp": sdp},  # aiohttp sends text-only forms urlencoded: a classic client bug
        headers={"Authorization": "Bearer k"},
    )
    assert status == 415
    assert_error(body, "unsupported_content_type")


@pytest.mark.parametrize(
    ("session", "code", "param"),
    [
        ({"instructions": "x"}, "missing_required_parameter", "session.type"),
        (
            {"type": "realtime", "modalities_typo": 1},
            "unknown_parameter",
            "session.modalities_typo",
        ),
        ({"type": "realtime", "voice": "alloy"}, "unknown_parameter", "session.voice"),
        (
            {"type": "realtime", "audio": {"input": {"turn_detection": {"type": "loud"}}}},
            "invalid_value",
            "session.audio.input.turn_detection.type",
        ),
        (
            {"type": "realtime", "output_modalities": ["audio", "text"]},
            "invalid_value",
            "session.output_modalities",
        ),
    ],
)
async def test_multipart_bad_session_400_with_param(
    peer: PeerHandle, session: dict[str, Any], code: str, param: str
) -> None:
    form = aiohttp.FormData(default_to_multipart=True)
    form.add_field("sdp", await offer_sdp(), content_type="application/sdp")
    form.add_field("session", __import__("json").dumps(session), content_type="application/json")
    status, _, body = await post(
        f"{peer.url}/v1/realtime/calls", data=form, headers={"Authorization": "Bearer k"}
    )
    assert status == 400
    assert_error(body, code, param)


async def test_multipart_without_sdp_part(peer: PeerHandle) -> None:
    form = aiohttp.FormData(default_to_multipart=True)
    form.add_field("session", '{"type":"realtime"}', content_type="application/json")
    status, _, body = await post(
        f"{peer.url}/v1/realtime/calls", data=form, headers={"Authorization": "Bearer k"}
    )
    assert status == 400
    assert_error(body, "missing_required_parameter", "sdp")


@pytest.mark.parametrize(
    "sdp",
    ["", "hello", "v=0\r\n", "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\nm=audio 9 X 0\r\n"],
)
async def test_bad_sdp_is_invalid_offer(peer: PeerHandle, sdp: str) -> None:
    status, _, body = await post(f"{peer.url}/v1/realtime/calls", data=sdp, headers=SDP_HEADERS)
    assert status == 400
    assert_error(body, "invalid_offer")
    assert "WHIP" in body["error"]["message"]


async def test_offer_missing_ice_credentials_is_invalid_offer(peer: PeerHandle) -> None:
    sdp = "\r\n".join(
        line for line in (await offer_sdp()).splitlines() if not line.startswith("a=ice-")
    )
    status, _, body = await post(f"{peer.url}/v1/realtime/calls", data=sdp, headers=SDP_HEADERS)
    assert status == 400
    assert_error(body, "invalid_offer")


async def test_missing_or_malformed_key_is_401(peer: PeerHandle) -> None:
    sdp = await offer_sdp()
    for headers in (
        {"Content-Type": "application/sdp"},
        {"Content-Type": "application/sdp", "Authorization": "Bearer "},
        {"Content-Type": "application/sdp", "Authorization": "Basic abc"},
    ):
        status, _, body = await post(f"{peer.url}/v1/realtime/calls", data=sdp, headers=headers)
        assert status == 401
        assert_error(body, "invalid_api_key")
        assert body["error"]["type"] == "invalid_request_error"


@pytest.mark.parametrize("peer_config", [PeerConfig(api_keys=("sk-good",))])
async def test_configured_keys_are_strict(peer: PeerHandle) -> None:
    sdp = await offer_sdp()
    headers = {"Content-Type": "application/sdp", "Authorization": "Bearer sk-bad"}
    status, _, body = await post(f"{peer.url}/v1/realtime/calls", data=sdp, headers=headers)
    assert status == 401
    assert "sk-bad" not in str(body)  # a refused key is never echoed
    c = peer.client()
    resp = await c.connect(key="sk-good")
    assert resp.status == 201


async def test_wrong_content_type_415_and_oversized_413(peer: PeerHandle) -> None:
    sdp = await offer_sdp()
    status, _, body = await post(
        f"{peer.url}/v1/realtime/calls",
        data=sdp,
        headers={"Authorization": "Bearer k", "Content-Type": "text/plain"},
    )
    assert status == 415
    assert_error(body, "unsupported_content_type")
    big = "a=x-padding:" + "x" * (300 * 1024)
    status, _, body = await post(f"{peer.url}/v1/realtime/calls", data=big, headers=SDP_HEADERS)
    assert status == 413
    assert_error(body, "request_too_large")

    async def chunks() -> Any:  # no Content-Length: the limit holds while reading
        for _ in range(40):
            yield b"x" * 10_000

    status, _, body = await post(
        f"{peer.url}/v1/realtime/calls", data=chunks(), headers=SDP_HEADERS
    )
    assert status == 413


async def test_cors_preflight_and_exposed_headers(peer: PeerHandle) -> None:
    origin = "http://page.example:9000"
    async with aiohttp.ClientSession() as http:
        async with http.options(
            f"{peer.url}/v1/realtime/calls",
            headers={
                "Origin": origin,
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "authorization,content-type",
            },
        ) as resp:
            assert resp.status == 204
            assert resp.headers["Access-Control-Allow-Origin"] == origin
            assert "POST" in resp.headers["Access-Control-Allow-Methods"]
            assert "authorization" in resp.headers["Access-Control-Allow-Headers"]
        async with http.post(
            f"{peer.url}/v1/realtime/calls",
            data=await offer_sdp(),
            headers={**SDP_HEADERS, "Origin": origin},
        ) as resp:
            assert resp.status == 201
            assert resp.headers["Access-Control-Allow-Origin"] == origin
            exposed = resp.headers["Access-Control-Expose-Headers"]
            assert "Location" in exposed and "X-Session-Id" in exposed
        async with http.get(f"{peer.url}/_rtedge/stats", headers={"Origin": origin}) as resp:
            assert "Access-Control-Allow-Origin" not in resp.headers  # admin: no CORS


async def test_client_secret_mint_use_and_expiry(peer: PeerHandle) -> None:
    status, _, body = await post(
        f"{peer.url}/v1/realtime/client_secrets",
        json={
            "expires_after": {"anchor": "created_at", "seconds": 120},
            "session": {
                "type": "realtime",
                "instructions": "From the secret.",
                "audio": {"input": {"turn_detection": None}},
            },
        },
        headers={"Authorization": "Bearer sk-test"},
    )
    assert status == 200, body
    parsed = ClientSecretCreateResponse.model_validate(body)
    assert parsed.value.startswith("ek_")
    assert abs(parsed.expires_at - (time.time() + 120)) < 5
    assert body["session"]["instructions"] == "From the secret."
    assert body["session"]["object"] == "realtime.session"
    # The ephemeral key opens calls (raw SDP), each carrying the secret's session.
    for _ in range(2):
        c = await peer.connect(key=parsed.value)
        eff = c.events[0]["session"]
        assert eff["instructions"] == "From the secret."
        assert eff["audio"]["input"]["turn_detection"] is None
    # An ephemeral key cannot mint another one.
    status, _, body = await post(
        f"{peer.url}/v1/realtime/client_secrets",
        json={},
        headers={"Authorization": f"Bearer {parsed.value}"},
    )
    assert status == 401
    # Expired: move the peer's wall clock past expiry (the clock is injectable for this).
    keys = peer.app[PEER].keys
    keys.clock = lambda: time.time() + 121
    status, _, body = await post(
        f"{peer.url}/v1/realtime/calls",
        data=await offer_sdp(),
        headers={"Authorization": f"Bearer {parsed.value}", "Content-Type": "application/sdp"},
    )
    assert status == 401
    assert_error(body, "invalid_api_key")
    assert "expired" in body["error"]["message"].lower()


async def test_unknown_ephemeral_key_refused(peer: PeerHandle) -> None:
    status, _, body = await post(
        f"{peer.url}/v1/realtime/calls",
        data=await offer_sdp(),
        headers={"Authorization": "Bearer ek_not_minted_here", "Content-Type": "application/sdp"},
    )
    assert status == 401


@pytest.mark.parametrize(
    ("body", "code", "param"),
    [
        (
            {"expires_after": {"anchor": "created_at", "seconds": 5}},
            "invalid_value",
            "expires_after.seconds",
        ),
        ({"expires_after": {"anchor": "now"}}, "invalid_value", "expires_after.anchor"),
        ({"session": {"instructions": "x"}}, "missing_required_parameter", "session.type"),
        (
            {"session": {"type": "realtime", "temperature": 0.8}},
            "unknown_parameter",
            "session.temperature",
        ),
        ({"ttl": 5}, "unknown_parameter", "ttl"),
    ],
)
async def test_client_secret_validation(
    peer: PeerHandle, body: dict[str, Any], code: str, param: str
) -> None:
    status, _, resp = await post(
        f"{peer.url}/v1/realtime/client_secrets",
        json=body,
        headers={"Authorization": "Bearer sk-test"},
    )
    assert status == 400
    assert_error(resp, code, param)


async def test_client_secret_defaults_and_bad_json(peer: PeerHandle) -> None:
    status, _, body = await post(
        f"{peer.url}/v1/realtime/client_secrets",
        json={"session": {"type": "realtime"}},
        headers={"Authorization": "Bearer sk-test"},
    )
    assert status == 200
    assert abs(body["expires_at"] - (time.time() + 600)) < 5  # default 600 s
    status, _, body = await post(
        f"{peer.url}/v1/realtime/client_secrets",
        data=b"{not json",
        headers={"Authorization": "Bearer sk-test", "Content-Type": "application/json"},
    )
    assert status == 400
    assert_error(body, "invalid_json")


async def test_hangup_ends_the_call(peer: PeerHandle) -> None:
    c = await peer.connect()
    assert c.call_id is not None
    status, _, body = await post(
        f"{peer.url}/v1/realtime/calls/{c.call_id}/hangup", headers={"Authorization": "Bearer k"}
    )
    assert status == 200
    await until(
        lambda: c.pc.connectionState in ("closed", "failed") or c.closed.is_set(), within=10
    )
    record = await peer.call_record(c.call_id)
    assert not record["active"] and record["end_reason"] == "hangup"
    status, _, body = await post(
        f"{peer.url}/v1/realtime/calls/{c.call_id}/hangup", headers={"Authorization": "Bearer k"}
    )
    assert status == 404
    assert_error(body, "call_id_not_found")
    status, _, body = await post(f"{peer.url}/v1/realtime/calls/{c.call_id}/hangup")
    assert status == 401


async def test_unknown_route_and_method_use_the_envelope(peer: PeerHandle) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{peer.url}/v1/realtime/nothing") as resp:
            assert resp.status == 404
            assert_error(await resp.json(), "not_found")
        async with http.get(f"{peer.url}/v1/realtime/calls") as resp:
            assert resp.status == 405
            assert_error(await resp.json(), "method_not_allowed")


async def test_malformed_requests_leak_nothing(peer: PeerHandle) -> None:
    stats0 = await peer.admin("GET", "stats")
    sdp = await offer_sdp()
    bad: list[tuple[Any, dict[str, str]]] = [
        ("garbage", SDP_HEADERS),
        (sdp.replace("a=fingerprint", "a=nofingerprint"), SDP_HEADERS),
        (b"\xff\xfe\x00binary", SDP_HEADERS),
        (
            "--x\r\nbroken multipart",
            {"Authorization": "Bearer k", "Content-Type": "multipart/form-data; boundary=x"},
        ),
        ("{}", {"Authorization": "Bearer k", "Content-Type": "application/json"}),
    ]
    for _ in range(3):
        for data, headers in bad:
            status, _, _ = await post(f"{peer.url}/v1/realtime/calls", data=data, headers=headers)
            assert 400 <= status < 500
    stats = await peer.admin("GET", "stats")
    assert stats["active_calls"] == 0
    assert stats["asyncio_tasks"] <= stats0["asyncio_tasks"] + 1
    assert stats["http_refused"] - stats0["http_refused"] == 15
    c = await peer.connect()  # still serving
    assert c.events[0]["type"] == "session.created"


async def test_http_faults_401_429_500_then_normal(peer: PeerHandle) -> None:
    sdp = await offer_sdp()
    url = f"{peer.url}/v1/realtime/calls"
    await peer.admin("POST", "faults", {"http_status": 401, "count": 2})
    await peer.admin("POST", "faults", {"http_status": 429, "retry_after": 3, "count": 1})
    await peer.admin("POST", "faults", {"http_status": 500, "count": 1})
    pending = await peer.admin("GET", "faults")
    assert [f.get("http_status") for f in pending["pending"]] == [401, 429, 500]
    seen = []
    for _ in range(4):
        status, headers, body = await post(url, data=sdp, headers=SDP_HEADERS)
        seen.append(status)
        if status == 429:
            assert headers["Retry-After"] == "3"
            assert_error(body, "rate_limit_exceeded")
        if status == 500:
            assert body["error"]["type"] == "server_error"
    assert seen == [401, 401, 429, 500]
    c = await peer.connect()
    assert c.events[0]["type"] == "session.created"


async def test_http_fault_slow_answer_and_clear(peer: PeerHandle) -> None:
    await peer.admin("POST", "faults", {"slow_answer_s": 1.0, "count": 1})
    t0 = time.monotonic()
    await peer.connect()
    assert time.monotonic() - t0 >= 1.0
    await peer.admin("POST", "faults", {"http_status": 503, "count": 5})
    cleared = await peer.admin("DELETE", "faults")
    assert cleared == {"cleared": 1}
    await peer.connect()


async def test_http_fault_on_client_secrets(peer: PeerHandle) -> None:
    await peer.admin("POST", "faults", {"http_status": 500, "endpoint": "client_secrets"})
    url = f"{peer.url}/v1/realtime/client_secrets"
    status, _, _ = await post(url, json={}, headers={"Authorization": "Bearer k"})
    assert status == 500
    status, _, _ = await post(url, json={}, headers={"Authorization": "Bearer k"})
    assert status == 200


@pytest.mark.parametrize(
    "spec",
    [
        {"http_status": 200},
        {"slow_answer_s": -1},
        {"call": "explode"},
        {"http_status": 401, "x": 1},
        {"http_status": 500, "slow_answer_s": 1},
        "nope",
    ],
)
async def test_bad_fault_specs_are_400(peer: PeerHandle, spec: Any) -> None:
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{peer.url}/_rtedge/faults", json=spec) as resp,
    ):
        assert resp.status == 400
        assert_error(await resp.json(), "invalid_fault")


def _non_loopback_ipv4() -> str | None:
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.connect(("192.0.2.1", 9))  # no packet is sent; picks the outgoing interface
            addr = str(s.getsockname()[0])
    except OSError:
        return None
    return None if addr.startswith("127.") else addr


async def test_admin_routes_refuse_non_loopback() -> None:
    addr = _non_loopback_ipv4()
    if addr is None:
        pytest.skip("no non-loopback IPv4 address on this machine")
    from aiohttp import web

    from rtedge.peer import create_app
    from tests.ports import free_port

    runner = web.AppRunner(create_app(PeerConfig()), access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "0.0.0.0", port).start()
    try:
        async with aiohttp.ClientSession() as http:
            for method, path in (
                ("GET", "calls"),
                ("GET", "stats"),
                ("POST", "faults"),
                ("DELETE", "faults"),
            ):
                async with http.request(
                    method, f"http://{addr}:{port}/_rtedge/{path}", json={"call": "drop_connection"}
                ) as resp:
                    assert resp.status == 403, path
                    assert_error(await resp.json(), "forbidden")
            async with http.get(f"http://127.0.0.1:{port}/_rtedge/stats") as resp:
                assert resp.status == 200
    finally:
        await runner.cleanup()


async def test_app_cleanup_ends_active_calls() -> None:
    runner, url = await start_peer(PeerConfig())
    handle = PeerHandle(url, runner.app, [])
    c = await handle.connect()
    registry = runner.app[PEER].registry
    assert len(registry.active) == 1
    await runner.cleanup()
    assert len(registry.active) == 0
    assert registry.ended[-1].end_reason == "server_shutdown"
    await until(
        lambda: c.pc.connectionState in ("closed", "failed") or c.closed.is_set(), within=10
    )
    await c.close()
    await asyncio.sleep(0)
