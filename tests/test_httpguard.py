"""The Host/Origin/content-type rules on the real health server, over real sockets: what a
browser page would send is refused and never reaches the push-to-talk callback; what a shell
(curl, the CLI) sends keeps working."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import aiohttp
import pytest

from rtedge.health import HealthServer
from rtedge.httpguard import GuardPolicy, split_host
from rtedge.state import State
from tests.support import recorder


@dataclass
class Rig:
    server: HealthServer
    presses: list[str] = field(default_factory=list)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.server.bound_port}"


@pytest.fixture
async def rig() -> AsyncIterator[Rig]:
    presses: list[str] = []
    policy = GuardPolicy.build(
        "127.0.0.1", ["kiosk.lan"], ["http://dashboard.lan:8080"], max_body_bytes=1024
    )
    server = HealthServer(
        State(),
        "127.0.0.1",
        0,
        on_press=recorder(presses, "press"),
        on_release=recorder(presses, "release"),
        guard=policy,
    )
    await server.start()
    try:
        yield Rig(server, presses)
    finally:
        await server.stop()


async def send(rig: Rig, method: str, path: str, **headers: str) -> tuple[int, dict[str, str]]:
    body = headers.pop("body", None)
    async with (
        aiohttp.ClientSession(skip_auto_headers=["Content-Type"]) as http,
        http.request(method, rig.base + path, headers=headers, data=body) as resp,
    ):
        await resp.read()
        return resp.status, dict(resp.headers)


async def test_shell_press_without_origin_works(rig: Rig) -> None:
    status, _ = await send(rig, "POST", "/ptt/press")
    assert status == 200
    status, _ = await send(rig, "POST", "/ptt/release", **{"Content-Type": "application/json"})
    assert status == 200
    assert rig.presses == ["press", "release"]


@pytest.mark.parametrize(
    "headers",
    [
        {"Host": "evil.example:8787"},  # DNS rebinding: our address under the attacker's name
        {"Host": "127.0.0.1.evil.example"},
        {"Origin": "http://evil.example"},
        {"Origin": "null"},  # sandboxed iframe, file://
        {"Origin": "http://127.0.0.1:9999"},  # another loopback port is another origin
        {"Content-Type": "text/plain", "body": "x"},
        {"Content-Type": "application/x-www-form-urlencoded", "body": "a=b"},
        {"Content-Type": "multipart/form-data; boundary=x", "body": "--x--"},
        {"Content-Type": "application/json", "body": "x" * 5000},  # over the body cap
    ],
)
async def test_browser_shaped_press_is_refused(rig: Rig, headers: dict[str, str]) -> None:
    status, resp_headers = await send(rig, "POST", "/ptt/press", **headers)
    assert status in (403, 413, 415), status
    assert "Access-Control-Allow-Origin" not in resp_headers
    assert rig.presses == []


async def test_rebinding_host_cannot_read_status(rig: Rig) -> None:
    for path in ("/status", "/healthz", "/metrics", "/readyz"):
        status, _ = await send(rig, "GET", path, Host=f"evil.example:{rig.server.bound_port}")
        assert status == 403, path
    status, _ = await send(rig, "GET", "/status", Host=f"kiosk.lan:{rig.server.bound_port}")
    assert status == 200  # a configured name is fine
    status, _ = await send(rig, "GET", "/status", Host=f"localhost:{rig.server.bound_port}")
    assert status == 200
    assert rig.server.guard.refused["host"] == 4


async def test_foreign_preflight_gets_no_permission(rig: Rig) -> None:
    status, headers = await send(
        rig,
        "OPTIONS",
        "/ptt/press",
        Origin="http://evil.example",
        **{"Access-Control-Request-Method": "POST"},
    )
    assert status == 403
    assert not any(k.lower().startswith("access-control") for k in headers)


async def test_allowed_origin_may_press_and_gets_cors(rig: Rig) -> None:
    origin = "http://dashboard.lan:8080"
    status, headers = await send(
        rig, "OPTIONS", "/ptt/press", Origin=origin, **{"Access-Control-Request-Method": "POST"}
    )
    assert status == 204 and headers["Access-Control-Allow-Origin"] == origin
    status, headers = await send(rig, "POST", "/ptt/press", Origin=origin)
    assert status == 200 and headers["Access-Control-Allow-Origin"] == origin
    own = f"http://127.0.0.1:{rig.server.bound_port}"
    status, headers = await send(rig, "POST", "/ptt/release", Origin=own)
    assert status == 200 and "Access-Control-Allow-Origin" not in headers
    assert rig.presses == ["press", "release"]


async def test_big_body_is_not_read(rig: Rig) -> None:
    """A 50 MB body announced to /ptt/press: 413 at once, the connection closed unread."""
    port = rig.server.bound_port
    assert port is not None

    def attack() -> bytes:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            s.sendall(
                b"POST /ptt/press HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                b"Content-Type: application/json\r\nContent-Length: 50000000\r\n\r\n" + b"{" * 4096
            )
            reply = b""
            while chunk := s.recv(4096):  # ends when the server closes: nothing more is read
                reply += chunk
            return reply

    reply = await asyncio.to_thread(attack)
    assert reply.startswith(b"HTTP/1.1 413"), reply[:80]
    assert rig.presses == []


def test_split_host() -> None:
    assert split_host("127.0.0.1:8787") == "127.0.0.1"
    assert split_host("[::1]:8787") == "::1"
    assert split_host("Kiosk.LAN") == "kiosk.lan"
    assert split_host("::1") is None  # an IPv6 Host must be bracketed
    assert split_host("a@b") is None
    assert split_host("host:port") is None


async def test_refusals_are_counted_in_metrics_and_logged_sparingly(
    rig: Rig, caplog: pytest.LogCaptureFixture
) -> None:
    for _ in range(50):
        await send(rig, "POST", "/ptt/press", Origin="http://evil.example")
    status, _ = await send(rig, "GET", "/status", Host="evil.example")
    async with (
        aiohttp.ClientSession() as http,
        http.get(rig.base + "/metrics") as resp,
    ):
        text = await resp.text()
    assert 'rtedge_http_refused_total{reason="origin"} 50.0' in text
    assert 'rtedge_http_refused_total{reason="host"} 1.0' in text
    lines = [r for r in caplog.records if r.name == "rtedge.httpguard"]
    assert 1 <= len(lines) <= 6, len(lines)
    assert rig.presses == []
