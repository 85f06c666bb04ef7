from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from rtedge.peer import PeerConfig, create_app
from rtedge.rtc.ice import use_host_addresses
from tests.peer.client import Client
from tests.ports import free_port


@pytest.fixture(autouse=True)
def loopback_ice() -> Iterator[None]:
    """Both ends on loopback, no STUN: aioice must be told to offer 127.0.0.1 (process-wide,
    so it is restored after each test of this directory)."""
    use_host_addresses(["127.0.0.1"])
    yield
    use_host_addresses(None)


@dataclasses.dataclass
class PeerHandle:
    url: str
    app: web.Application
    clients: list[Client]

    def client(self, label: str = "oai-events", with_mic: bool = True) -> Client:
        c = Client(self.url, label, with_mic)
        self.clients.append(c)
        return c

    async def connect(self, session: dict[str, Any] | None = None, **kw: Any) -> Client:
        c = self.client(kw.pop("label", "oai-events"), kw.pop("with_mic", True))
        await c.connect(session=session, **kw)
        return c

    async def admin(self, method: str, path: str, body: Any = None) -> Any:
        async with aiohttp.ClientSession() as http:
            resp = await http.request(method, f"{self.url}/_rtedge/{path}", json=body)
            data = await resp.json()
            assert resp.status == 200, data
            return data

    async def call_record(self, call_id: str) -> dict[str, Any]:
        calls = await self.admin("GET", "calls")
        return next(c for c in calls if c["call_id"] == call_id)


async def start_peer(config: PeerConfig) -> tuple[web.AppRunner, str]:
    runner = web.AppRunner(create_app(config), access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner, f"http://127.0.0.1:{port}"


@pytest.fixture
def peer_config() -> PeerConfig:
    return PeerConfig()


@pytest.fixture
async def peer(peer_config: PeerConfig) -> AsyncIterator[PeerHandle]:
    runner, url = await start_peer(peer_config)
    handle = PeerHandle(url, runner.app, [])
    try:
        yield handle
    finally:
        for c in handle.clients:
            await c.close()
        await runner.cleanup()
    # Every event any client received validated against the openai models (or the rtAV schema).
    violations = [v for c in handle.clients for v in c.violations]
    assert not violations, violations


@pytest.fixture
def make_config() -> Callable[..., PeerConfig]:
    return lambda **kw: PeerConfig(**kw)
