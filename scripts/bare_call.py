"""What the benchmarks' bare aiortc clients share: the OpenAI-shaped offer/answer with the
local peer (raw SDP, a Bearer key), and nothing of rtedge's call code."""

from __future__ import annotations

from typing import Any


async def offer_and_answer(pc: Any, calls_url: str) -> None:
    """Set our offer, POST it to ``calls_url`` and set the peer's answer."""
    import aiohttp
    from aiortc import RTCSessionDescription

    await pc.setLocalDescription(await pc.createOffer())
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            calls_url,
            data=pc.localDescription.sdp,
            headers={"Authorization": "Bearer bench", "Content-Type": "application/sdp"},
        ) as resp,
    ):
        answer = await resp.text()
        assert resp.status in (200, 201), (resp.status, answer)
    await pc.setRemoteDescription(RTCSessionDescription(answer, "answer"))
