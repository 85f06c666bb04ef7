"""A real aiortc client for the peer tests: mic track we can feed, data channel, event log, and a
recorder of the audio that comes back (with arrival times)."""

from __future__ import annotations

import asyncio
import fractions
import json
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import av
import numpy as np
from aiortc import (
    MediaStreamTrack,
    RTCConfiguration,
    RTCPeerConnection,
    RTCSessionDescription,
)
from aiortc.mediastreams import MediaStreamError

from tests.peer.schema import validate_server_event
from tests.support import scaled

RATE = 48_000
FRAME = 960


def tone(seconds: float, freq: float = 440.0, level: float = 0.3) -> np.ndarray:
    t = np.arange(int(seconds * RATE)) / RATE
    return (np.sin(2 * np.pi * freq * t) * level * 32767).astype(np.int16)


def silence(seconds: float) -> np.ndarray:
    return np.zeros(int(seconds * RATE), dtype=np.int16)


def rms(pcm: np.ndarray) -> float:
    if pcm.size == 0:
        return 0.0
    return float(np.sqrt(np.mean(np.square(pcm.astype(np.float64))))) / 32768.0


def user_text(text: str) -> dict[str, Any]:
    """``conversation.item.create`` of a user's text message."""
    return {
        "type": "conversation.item.create",
        "item": {
            "type": "message",
            "role": "user",
            "content": [{"type": "input_text", "text": text}],
        },
    }


async def offer_sdp() -> str:
    """A real aiortc offer (data channel and audio), its connection closed again."""
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    pc.createDataChannel("oai-events")
    pc.addTransceiver("audio")
    await pc.setLocalDescription(await pc.createOffer())
    sdp = str(pc.localDescription.sdp)
    await pc.close()
    return sdp


class Mic(MediaStreamTrack):
    """Paced 20 ms mono frames: queued audio first, silence otherwise."""

    kind = "audio"

    def __init__(self) -> None:
        super().__init__()
        self._pending: deque[np.ndarray] = deque()
        self._start: float | None = None
        self._pts = 0
        self.sent_frames = 0
        self.played_at: list[float] = []
        self._flowing = asyncio.Event()
        self._flowing.set()

    def hold(self) -> None:
        """Send nothing until ``release()`` (a busy client): the held-up audio then goes out
        at once, as aiortc's sender catches up."""
        self._flowing.clear()

    def release(self) -> None:
        self._flowing.set()

    def play(self, pcm: np.ndarray) -> None:
        for i in range(0, pcm.size, FRAME):
            chunk = pcm[i : i + FRAME]
            if chunk.size < FRAME:
                chunk = np.concatenate([chunk, np.zeros(FRAME - chunk.size, dtype=np.int16)])
            self._pending.append(chunk)

    @property
    def queued_s(self) -> float:
        return len(self._pending) * FRAME / RATE

    async def recv(self) -> av.AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        await self._flowing.wait()
        loop = asyncio.get_running_loop()
        if self._start is None:
            self._start = loop.time()
        wait = self._start + self._pts / RATE - loop.time()
        if wait > 0:
            await asyncio.sleep(wait)
        pcm = self._pending.popleft() if self._pending else np.zeros(FRAME, dtype=np.int16)
        frame = av.AudioFrame.from_ndarray(pcm.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = RATE
        frame.pts = self._pts
        frame.time_base = fractions.Fraction(1, RATE)
        self._pts += FRAME
        self.sent_frames += 1
        return frame


@dataclass
class Received:
    """Audio that came back: one entry per 20 ms frame (arrival time, mono pcm)."""

    times: list[float] = field(default_factory=list)
    frames: list[np.ndarray] = field(default_factory=list)

    def pcm_between(self, t0: float, t1: float) -> np.ndarray:
        parts = [f for t, f in zip(self.times, self.frames, strict=True) if t0 <= t < t1]
        return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int16)

    def all_pcm(self) -> np.ndarray:
        return np.concatenate(self.frames) if self.frames else np.zeros(0, dtype=np.int16)


class Client:
    """One call to the peer. ``events`` holds every server event (decoded, validated)."""

    def __init__(self, base_url: str, label: str = "oai-events", with_mic: bool = True) -> None:
        self.base_url = base_url
        self.label = label
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.mic = Mic() if with_mic else None
        self.events: list[dict[str, Any]] = []
        self.raw_messages: list[str] = []
        self.invalid: list[str] = []
        self.violations: list[str] = []
        self.received = Received()
        self._cond = asyncio.Condition()
        self._tasks: list[asyncio.Task[None]] = []
        self._notifiers: set[asyncio.Future[None]] = set()
        self.call_id: str | None = None
        self.session_id: str | None = None
        self.channel = self.pc.createDataChannel(label)
        self.opened = asyncio.Event()
        self.closed = asyncio.Event()
        self.channel.on("open", self.opened.set)
        self.channel.on("close", self.closed.set)
        self.channel.on("message", self._on_message)
        if self.mic is not None:
            self.pc.addTrack(self.mic)
        else:
            self.pc.addTransceiver("audio", direction="recvonly")
        self.pc.on("track", self._on_track)
        self.validate = True

    # -- signaling ------------------------------------------------------------------------
    async def connect(
        self,
        key: str = "sk-test",
        session: dict[str, Any] | None = None,
        multipart: bool = False,
        wait_open: bool = True,
    ) -> aiohttp.ClientResponse:
        offer = await self.pc.createOffer()
        await self.pc.setLocalDescription(offer)
        sdp = self.pc.localDescription.sdp
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        async with aiohttp.ClientSession() as http:
            if multipart or session is not None:
                form = aiohttp.FormData(default_to_multipart=True)
                form.add_field("sdp", sdp, content_type="application/sdp")
                if session is not None:
                    form.add_field("session", json.dumps(session), content_type="application/json")
                resp = await http.post(
                    f"{self.base_url}/v1/realtime/calls", data=form, headers=headers
                )
            else:
                headers["Content-Type"] = "application/sdp"
                resp = await http.post(
                    f"{self.base_url}/v1/realtime/calls", data=sdp, headers=headers
                )
            body = await resp.text()
        if resp.status != 201:
            raise AssertionError(f"call refused: {resp.status} {body}")
        self.call_id = resp.headers["Location"].rsplit("/", 1)[-1]
        self.session_id = resp.headers.get("X-Session-Id")
        await self.pc.setRemoteDescription(RTCSessionDescription(body, "answer"))
        if wait_open:
            await asyncio.wait_for(self.opened.wait(), 10)
            await self.wait_for("session.created")
        return resp

    # -- events ---------------------------------------------------------------------------
    def _on_message(self, message: str | bytes) -> None:
        text = message if isinstance(message, str) else message.decode()
        self.raw_messages.append(text)
        try:
            event = json.loads(text)
        except ValueError:
            self.invalid.append(text)
            return
        if self.validate and isinstance(event, dict):
            try:
                validate_server_event(event)
            except Exception as exc:  # raised here it would vanish in the event emitter
                self.violations.append(f"{event.get('type')}: {exc}")
        if not isinstance(event, dict):
            self.invalid.append(text)
            return
        event["_t"] = time.monotonic()
        self.events.append(event)
        task = asyncio.ensure_future(self._notify())
        self._notifiers.add(task)
        task.add_done_callback(self._notifiers.discard)

    async def _notify(self) -> None:
        async with self._cond:
            self._cond.notify_all()

    def send(self, event: dict[str, Any] | str) -> None:
        self.channel.send(event if isinstance(event, str) else json.dumps(event))

    def types(self, exclude: tuple[str, ...] = ("rate_limits.updated",)) -> list[str]:
        return [e["type"] for e in self.events if e["type"] not in exclude]

    def of(self, etype: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e["type"] == etype]

    async def wait_for(
        self, etype: str, within: float = 10.0, after: int = 0, **match: Any
    ) -> dict[str, Any]:
        """The first event of ``etype`` at index >= ``after`` whose fields equal ``match``."""
        within = scaled(within)

        def find() -> dict[str, Any] | None:
            for e in self.events[after:]:
                if e["type"] == etype and all(e.get(k) == v for k, v in match.items()):
                    return e
            return None

        async def wait() -> dict[str, Any]:
            async with self._cond:
                while True:
                    found = find()
                    if found is not None:
                        return found
                    await self._cond.wait()

        try:
            return await asyncio.wait_for(wait(), within)
        except TimeoutError:
            raise AssertionError(
                f"no {etype} {match or ''} within {within}s; got {self.types()}"
            ) from None

    async def request(
        self, event: dict[str, Any], etype: str, within: float = 10.0
    ) -> dict[str, Any]:
        mark = len(self.events)
        self.send(event)
        return await self.wait_for(etype, within, after=mark)

    # -- media ----------------------------------------------------------------------------
    def _on_track(self, track: MediaStreamTrack) -> None:
        self._tasks.append(asyncio.ensure_future(self._record(track)))

    async def _record(self, track: MediaStreamTrack) -> None:
        while True:
            try:
                frame = await track.recv()
            except MediaStreamError:
                return
            arr = frame.to_ndarray().reshape(-1, len(frame.layout.channels))
            mono = arr.astype(np.int32).mean(axis=1).astype(np.int16)
            self.received.times.append(time.monotonic())
            self.received.frames.append(mono)

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.pc.close()
