"""The Live call's signaling errors and close reasons, against the peer in this process."""

from __future__ import annotations

import asyncio
import json

import aiohttp
import pytest

from rtedge.live.call import CLOSE_REASONS, LiveCall
from rtedge.live.events import decode_live_event
from rtedge.live.signaling import LiveSignaling, build_session
from rtedge.peer import PeerConfig
from rtedge.realtime.signaling import SignalingError
from rtedge.settings import RealtimeSettings
from tests.peer.conftest import start_peer


@pytest.mark.parametrize(
    ("status", "retry_after", "kind"),
    [(401, None, "auth"), (429, 3, "rate_limited"), (503, None, "server"), (400, None, "rejected")],
)
async def test_http_errors_are_sorted_as_for_the_realtime_api(
    status: int, retry_after: int | None, kind: str
) -> None:
    runner, url = await start_peer(PeerConfig())
    try:
        fault: dict[str, object] = {"endpoint": "live_sessions", "http_status": status}
        if retry_after is not None:
            fault["retry_after"] = retry_after
        async with aiohttp.ClientSession() as http:
            resp = await http.post(f"{url}/_rtedge/faults", json=fault)
            assert resp.status == 200
            rt = RealtimeSettings(provider="live", url=f"{url}/v1/live/sessions", api_key="sk-x")
            with pytest.raises(SignalingError) as info:
                await LiveSignaling(rt, http).create_call("v=0\r\n", build_session(rt))
        assert info.value.kind == kind and info.value.status == status
        assert info.value.retry_after == retry_after
        assert "sk-x" not in str(info.value)
    finally:
        await runner.cleanup()


@pytest.mark.parametrize("reason", sorted(CLOSE_REASONS))
async def test_every_close_reason_ends_the_call_as_the_supervisor_expects(reason: str) -> None:
    call = LiveCall.__new__(LiveCall)
    call._dead = asyncio.Event()
    call.dead_reason = None
    call._started, call._closed = asyncio.Event(), asyncio.Event()
    seen: list[str] = []
    call._forward = lambda e: seen.append(e.type)
    closed = {"type": "session.closed", "reason": reason, "usage": {"seconds": 12.5}}
    call._intercept(decode_live_event(json.dumps(closed)))
    assert call.is_dead and call.dead_reason == CLOSE_REASONS[reason]
    assert call.close_reason == reason and call.final_usage_s == 12.5 and seen == ["session.closed"]
    # expired rebuilds at once (the supervisor's session_expired), the rest back off
    assert (call.dead_reason == "session_expired") == (reason == "expired")
