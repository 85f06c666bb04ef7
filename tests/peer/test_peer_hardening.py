"""The peer's hostile-input rules (issue 14, rows 7-8), on the real app over real sockets: the
admin routes take the daemon's Host/Origin rules and JSON only; nested JSON is a 400, not a 500;
offers with a broken DTLS fingerprint, ICE credentials or ports are ``invalid_offer``; offers
beyond ``max_pending_calls`` get 429 with Retry-After."""

from __future__ import annotations

import json
import re
from typing import Any

import aiohttp
import pytest

from rtedge.peer import PeerConfig
from rtedge.peer.offer import InvalidOffer, check_offer
from tests.peer.client import offer_sdp
from tests.peer.conftest import PeerHandle


async def request(
    peer: PeerHandle, method: str, path: str, data: Any = None, **headers: str
) -> tuple[int, Any]:
    async with (
        aiohttp.ClientSession(skip_auto_headers=["Content-Type"]) as http,
        http.request(method, peer.url + path, data=data, headers=headers) as resp,
    ):
        text = await resp.text()
        try:
            return resp.status, json.loads(text)
        except ValueError:
            return resp.status, text


FAULT = json.dumps({"call": "unknown_event"})


async def test_admin_refuses_browser_shaped_requests(peer: PeerHandle) -> None:
    refused = [
        {"Origin": "http://127.0.0.1:1234", "Content-Type": "application/json"},
        {"Origin": "null", "Content-Type": "application/json"},
        {"Content-Type": "text/plain"},  # what a form or a no-cors fetch sends
        {"Content-Type": "application/x-www-form-urlencoded"},
        {"Host": "evil.example", "Content-Type": "application/json"},
        {},  # a body with no content type is not JSON either
    ]
    for headers in refused:
        status, body = await request(peer, "POST", "/_rtedge/faults", FAULT, **headers)
        assert status in (403, 415), (headers, status, body)
    status, body = await request(
        peer, "POST", "/_rtedge/faults", FAULT, **{"Content-Type": "application/json"}
    )
    assert status == 200, body
    status, _ = await request(peer, "GET", "/_rtedge/stats", Host="evil.example")
    assert status == 403


async def test_nested_json_is_a_400(peer: PeerHandle) -> None:
    deep = "[" * 2000 + "]" * 2000
    status, body = await request(
        peer,
        "POST",
        "/v1/realtime/client_secrets",
        '{"session": ' + deep + "}",
        Authorization="Bearer sk-test",
        **{"Content-Type": "application/json"},
    )
    assert status == 400 and body["error"]["code"] == "invalid_json", body
    form = aiohttp.FormData(default_to_multipart=True)
    form.add_field("sdp", "v=0\r\n")
    form.add_field("session", '{"type": "realtime", "x": ' + "[" * 100 + "]" * 100 + "}")
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            peer.url + "/v1/realtime/calls", data=form, headers={"Authorization": "Bearer sk-test"}
        ) as resp,
    ):
        status, body = resp.status, await resp.json()
    assert status == 400 and body["error"]["code"] == "invalid_json", body
    status, body = await request(
        peer, "POST", "/_rtedge/faults", deep, **{"Content-Type": "application/json"}
    )
    assert status == 400, body


def mangle(sdp: str, prefix: str, replacement: str | None) -> str:
    lines = []
    for line in sdp.splitlines():
        if line.startswith(prefix):
            if replacement is None:
                continue
            line = replacement
        lines.append(line)
    return "\r\n".join(lines) + "\r\n"


async def test_offers_with_broken_security_fields_are_invalid(peer: PeerHandle) -> None:
    good = await offer_sdp()
    check_offer(good)
    bad = {
        "fingerprint": mangle(good, "a=fingerprint:", "a=fingerprint:sha-256 ZZ:00"),
        "short fingerprint": mangle(good, "a=fingerprint:", "a=fingerprint:sha-256 AB:CD"),
        "no ice-ufrag": mangle(good, "a=ice-ufrag:", None),
        "no ice-pwd": mangle(good, "a=ice-pwd:", None),
        "short ice-pwd": mangle(good, "a=ice-pwd:", "a=ice-pwd:short"),
        "port": re.sub(r"^m=audio \d+", "m=audio 99999", good, flags=re.M),
    }
    for name, sdp in bad.items():
        with pytest.raises(InvalidOffer):
            check_offer(sdp)
        status, body = await request(
            peer,
            "POST",
            "/v1/realtime/calls",
            sdp,
            Authorization="Bearer sk-test",
            **{"Content-Type": "application/sdp"},
        )
        assert status == 400 and body["error"]["code"] == "invalid_offer", (name, body)


@pytest.mark.parametrize("peer_config", [PeerConfig(max_pending_calls=2)])
async def test_pending_calls_are_capped(peer: PeerHandle) -> None:
    """Offers whose sender never connects: the third gets 429 with Retry-After."""
    statuses = []
    retry_after = None
    for _ in range(3):
        async with (
            aiohttp.ClientSession() as http,
            http.post(
                peer.url + "/v1/realtime/calls",
                data=await offer_sdp(),  # its peer connection is closed: it never connects
                headers={"Authorization": "Bearer sk-test", "Content-Type": "application/sdp"},
            ) as resp,
        ):
            statuses.append(resp.status)
            retry_after = resp.headers.get("Retry-After", retry_after)
    assert statuses == [201, 201, 429], statuses
    assert retry_after is not None and float(retry_after) > 0
