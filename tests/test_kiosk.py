"""The /kiosk routes on a real health server over loopback: the page is self-contained and its
Content-Security-Policy allows exactly its own inline script and style; the event stream carries
State's captions and state as they change (also fields written without ``update()``), keeps at
most MAX_STREAMS open, ends on shutdown, and is behind the Host/Origin guard."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator

import aiohttp
import pytest

from rtedge import kiosk
from rtedge.health import HealthServer
from rtedge.httpguard import GuardPolicy
from rtedge.kiosk import KioskPage, build_page
from rtedge.settings import Settings
from rtedge.state import Connection, State, Turn
from tests.support import recorder, scaled


@pytest.fixture
async def served() -> AsyncIterator[tuple[State, KioskPage, HealthServer, str]]:
    state = State(connection=Connection.CONNECTED)
    settings = Settings.model_validate({"display": {"kiosk_page": True}, "ptt": {"mode": "toggle"}})
    page = KioskPage(state, settings)
    calls: list[str] = []
    health = HealthServer(
        state,
        "127.0.0.1",
        0,
        on_press=recorder(calls, "press"),
        on_release=recorder(calls, "release"),
        extra_routes=[page.add_routes],
        guard=GuardPolicy.build("127.0.0.1"),
    )
    await health.start()
    try:
        yield state, page, health, f"http://127.0.0.1:{health.bound_port}"
    finally:
        await health.stop()


async def next_event(resp: aiohttp.ClientResponse) -> dict[str, object]:
    """The next ``data:`` message of an event stream (comments and ids skipped)."""
    async with asyncio.timeout(scaled(5)):
        while True:
            line = (await resp.content.readline()).decode()
            if not line:
                raise EOFError("stream ended")
            if line.startswith("data: "):
                data: dict[str, object] = json.loads(line[6:])
                return data


def test_page_is_self_contained_and_its_csp_names_its_own_inline_code() -> None:
    html, csp = build_page(mode="hold", avatar=True, renew_s=30)
    assert not re.search(r"@[A-Z_]+@", html), "a placeholder was left in the page"
    # Nothing from elsewhere: no absolute URL, no external stylesheet, script or font.
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", html)
    assert "@import" not in html and "url(" not in html
    assert "<link" not in html and "<script src" not in html
    for part in ("default-src 'none'", "frame-ancestors 'none'", "connect-src 'self'"):
        assert part in csp
    # The hashes are those of the inline script and style: the page runs under its own policy.
    hashes = re.findall(r"'sha256-([^']+)'", csp)
    assert len(hashes) == 2
    assert kiosk._csp_hash(re.findall(r"<script>(.*?)</script>", html, re.S)[0]) in csp
    assert "Hold to talk" in html
    assert "Tap to talk" in build_page(mode="toggle", avatar=False, renew_s=30)[0]


async def test_stream_follows_state_and_the_page_is_served_with_its_policy(
    served: tuple[State, KioskPage, HealthServer, str],
) -> None:
    state, page, _, url = served
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{url}/kiosk") as resp:
            assert resp.status == 200
            assert resp.headers["Content-Security-Policy"] == page.csp
            assert resp.headers["X-Frame-Options"] == "DENY"
            assert "Tap to talk" in await resp.text()
        async with http.get(f"{url}/kiosk/events") as resp:
            assert resp.headers["Content-Type"].startswith("text/event-stream")
            first = await next_event(resp)
            assert first["state"] == "idle" and first["assistant"] == ""
            state.update(turn=Turn.THINKING)
            assert (await next_event(resp))["state"] == "thinking"
            state.update(transcript_assistant="Hello")
            assert (await next_event(resp))["assistant"] == "Hello"
            # A writer that skips update() (no listener call) is seen by the poll.
            state.transcript_assistant = "Hello there"
            assert (await next_event(resp))["assistant"] == "Hello there"
            state.update(connection=Connection.BACKOFF, last_error="connect timeout")
            msg = await next_event(resp)
            assert msg["state"] == "offline" and "connect timeout" in str(msg["label"])


async def test_streams_are_bounded_and_end_on_shutdown(
    served: tuple[State, KioskPage, HealthServer, str],
) -> None:
    _, page, health, url = served
    async with aiohttp.ClientSession() as http:
        streams = [await http.get(f"{url}/kiosk/events") for _ in range(kiosk.MAX_STREAMS + 2)]
        for resp in streams[2:]:
            await next_event(resp)
        # the two oldest were ended to make room
        for resp in streams[:2]:
            with pytest.raises(EOFError):
                while True:
                    await next_event(resp)
        assert page.evicted == 2
        # shutdown ends the others rather than waiting them out
        async with asyncio.timeout(scaled(10)):
            await health.stop()
        for resp in streams[2:]:
            with pytest.raises((EOFError, aiohttp.ClientPayloadError)):
                while True:
                    await next_event(resp)
            resp.close()


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        ({"Origin": "http://evil.example"}, "origin"),
        ({"Origin": "null"}, "origin"),
        ({"Host": "evil.example"}, "host"),
    ],
)
async def test_kiosk_routes_are_guarded(
    served: tuple[State, KioskPage, HealthServer, str], headers: dict[str, str], reason: str
) -> None:
    _, page, health, url = served
    async with aiohttp.ClientSession() as http:
        for path in ("/kiosk", "/kiosk/events"):
            async with http.get(f"{url}{path}", headers=headers) as resp:
                assert resp.status == 403
        assert health.guard.refused[reason] == 2
    assert page.streams_opened == 0
