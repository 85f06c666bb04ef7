"""A real aiortc client of the peer's GPT-Live route: JSON create, ``oai-events`` channel made
before the offer, every server event validated against ``openai.types.live``."""

from __future__ import annotations

import json
import time
from typing import Any

import aiohttp
from aiortc import RTCSessionDescription
from openai.types.live.server_event import ServerEvent
from pydantic import TypeAdapter

from rtedge.peer.sessionconf import first_extra
from tests.peer.client import Client

live_event_adapter: TypeAdapter[Any] = TypeAdapter(ServerEvent)
FAULT_TYPES = {"rtedge.test.unknown_event"}


def validate_live_event(event: dict[str, Any]) -> None:
    """Raise unless ``event`` is a Live server event with no field its model lacks."""
    model = live_event_adapter.validate_python(event)
    extra = first_extra(model, "")
    if extra is not None:
        raise ValueError(f"field {extra!r} is not in the openai model")


def live_session(**fields: Any) -> dict[str, Any]:
    return {"model": "gpt-live-1", **fields}


class LiveClient(Client):
    def __init__(self, base_url: str, with_mic: bool = True) -> None:
        super().__init__(base_url, "oai-events", with_mic)
        self.validate = False  # Live events are checked below, not against the Realtime API

    async def connect_live(
        self, session: dict[str, Any] | None = None, key: str = "sk-test", wait: bool = True
    ) -> dict[str, Any]:
        offer = await self.pc.createOffer()
        await self.pc.setLocalDescription(offer)
        body = {
            "session": session or live_session(),
            "transport": {"type": "webrtc", "sdp": self.pc.localDescription.sdp},
        }
        async with aiohttp.ClientSession() as http:
            resp = await http.post(
                f"{self.base_url}/v1/live/sessions",
                json=body,
                headers={"Authorization": f"Bearer {key}"},
            )
            answer = await resp.json()
        if resp.status != 201:
            raise AssertionError(f"create refused: {resp.status} {answer}")
        assert "Location" not in resp.headers
        self.session_id = answer["session"]["id"]
        await self.pc.setRemoteDescription(
            RTCSessionDescription(answer["transport"]["sdp"], "answer")
        )
        if wait:
            await self.wait_for("session.started")
        return dict(answer)

    def _on_message(self, message: str | bytes) -> None:
        super()._on_message(message)
        if not self.events:
            return
        event = self.events[-1]
        if event.get("_checked") or event.get("type") in FAULT_TYPES:
            return
        event["_checked"] = True
        clean = {k: v for k, v in event.items() if not k.startswith("_")}
        try:
            validate_live_event(clean)
        except Exception as exc:
            self.violations.append(f"{event.get('type')}: {exc}")

    def send_event(self, etype: str, **fields: Any) -> str:
        event_id = f"evt_{time.monotonic_ns()}"
        self.send(json.dumps({"type": etype, "event_id": event_id, **fields}))
        return event_id
