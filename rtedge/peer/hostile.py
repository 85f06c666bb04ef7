"""Hostile events for the threat-model tests (``POST /_rtedge/faults`` with these kinds): what a
broken or malicious service could put on the data channel, sent by a real aiortc peer.

- ``deep_json_event``: a 4 KB event nested 2000 deep (``RecursionError`` in a naive decoder).
- ``huge_event``: one message of ``bytes`` (default 26.7 MB), sent past the size the client
  advertised in ``a=max-message-size``, as a service that ignores it would.
- ``bomb_image_event``: an rtAV ``response.output_image.delta`` carrying a valid 500 KB
  progressive JPEG of 16000x16000 (decoding it takes ~740 MB).
"""

from __future__ import annotations

import base64
import struct
from typing import Any, Final

from rtedge.peer import wire
from rtedge.protocol.codec import encode

HOSTILE_FAULTS: Final = frozenset({"deep_json_event", "huge_event", "bomb_image_event"})
HUGE_DEFAULT_BYTES: Final = 26_700_000
HUGE_MAX_BYTES: Final = 64 << 20
DEEP_NESTING: Final = 2000
BOMB_EDGE: Final = 16000


def deep_json(depth: int = DEEP_NESTING) -> str:
    return (
        '{"type":"response.done","event_id":"event_deep","response":'
        + "[" * depth
        + ("]" * depth)
        + "}"
    )


def huge_json(size: int) -> str:
    event = wire.stamp(wire.error_event("", "rtedge_huge_event", None, None))
    overhead = len(encode(event).encode("utf-8"))
    event["error"]["message"] = "x" * max(0, size - overhead)
    return encode(event)


def _segment(marker: int, payload: bytes) -> bytes:
    return b"\xff" + bytes([marker]) + struct.pack(">H", len(payload) + 2) + payload


def bomb_jpeg(edge: int = BOMB_EDGE) -> bytes:
    """A valid progressive grey JPEG of ``edge`` x ``edge`` whose only scan codes every block's
    DC as "no change" in one bit: 500 KB for 16000x16000, which FFmpeg decodes into ~740 MB
    (coefficients plus picture) in about 2 s."""
    dqt = _segment(0xDB, b"\x00" + bytes([1] * 64))
    sof2 = _segment(0xC2, b"\x08" + struct.pack(">HH", edge, edge) + b"\x01\x01\x11\x00")
    dht = _segment(0xC4, b"\x00" + bytes([1] + [0] * 15) + b"\x00")  # one 1-bit code: 0
    sos = _segment(0xDA, b"\x01\x01\x00\x00\x00\x00")  # DC first scan
    blocks = ((edge + 7) // 8) ** 2
    return b"\xff\xd8" + dqt + sof2 + dht + sos + bytes((blocks + 7) // 8) + b"\xff\xd9"


def bomb_image_event() -> str:
    return encode(
        {
            "type": "response.output_image.delta",
            "event_id": wire.new_id("event"),
            "response_id": wire.new_id("resp"),
            "item_id": wire.new_id("item"),
            "delta": base64.b64encode(bomb_jpeg()).decode("ascii"),
        }
    )


def send(channel: Any, kind: str, size: int | None) -> str:
    """Send one hostile message on an open data channel; a short description of what went."""
    if channel is None or channel.readyState != "open":
        return "no open data channel"
    if kind == "deep_json_event":
        text = deep_json()
    elif kind == "huge_event":
        text = huge_json(size or HUGE_DEFAULT_BYTES)
    else:
        text = bomb_image_event()
    transport = channel.transport
    cap = transport._remote_max_message_size
    transport._remote_max_message_size = 0  # 0: "no limit" to aiortc; the client's is ignored
    try:
        channel.send(text)
    finally:
        transport._remote_max_message_size = cap
    return f"sent {len(text)} bytes"
