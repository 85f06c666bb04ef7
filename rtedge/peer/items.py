"""One session's conversation: its items, the user audio kept for echo, and their events."""

from __future__ import annotations

import base64
import binascii
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, Final

import numpy as np

from rtedge.media.dsp import resample
from rtedge.peer import wire
from rtedge.peer.audio_in import RATE, SAMPLES_PER_MS, Pcm
from rtedge.peer.record import CallRecord
from rtedge.peer.sessionconf import SessionError

JsonDict = dict[str, Any]

USER_AUDIO_KEPT: Final = 8  # committed input audio kept for echo mode (the most recent items)
PCM_RATE: Final = 24_000  # ``audio/pcm`` in JSON events: 24 kHz mono s16le


def pcm_from_base64(audio: str, field: str, param: str) -> Pcm:
    """Base64 ``audio/pcm`` (24 kHz) from an event's ``field``, as 48 kHz mono s16 (a
    SessionError for ``param`` when it is not base64)."""
    try:
        data = base64.b64decode(audio, validate=True)
    except (binascii.Error, ValueError):
        raise SessionError(f"Invalid base64 in '{field}'.", "invalid_value", param) from None
    pcm = np.frombuffer(data[: len(data) // 2 * 2], dtype="<i2").astype(np.int16)
    return resample(pcm, PCM_RATE, RATE)


class Conversation:
    def __init__(self, send: Callable[[JsonDict], None], record: CallRecord) -> None:
        self._send = send
        self._record = record
        self.id = wire.new_id("conv")
        self.items: OrderedDict[str, JsonDict] = OrderedDict()
        self.user_audio: OrderedDict[str, Pcm] = OrderedDict()
        self.user_audio_ms: dict[str, int] = {}
        self.assistant_audio_ms: dict[str, int] = {}
        self.call_names: dict[str, str] = {}
        #: User items committed by server_vad's idle timeout (answered as such).
        self.timeout_items: set[str] = set()

    def values(self) -> list[JsonDict]:
        return list(self.items.values())

    @property
    def last_id(self) -> str | None:
        return next(reversed(self.items), None) if self.items else None

    def get(self, item_id: str) -> JsonDict:
        item = self.items.get(item_id)
        if item is None:
            raise SessionError(
                f"Item with item_id not found: {item_id}", "item_not_found", "item_id"
            )
        return item

    def previous(self, item_id: str) -> str | None:
        prev = None
        for key in self.items:
            if key == item_id:
                return prev
            prev = key
        return prev

    def add(self, item: JsonDict, announce_done: bool = True) -> None:
        prev = self.last_id
        self.items[item["id"]] = item
        self._send({"type": "conversation.item.added", "previous_item_id": prev, "item": item})
        if announce_done:
            self.done(item)

    def done(self, item: JsonDict) -> None:
        self._send(
            {
                "type": "conversation.item.done",
                "previous_item_id": self.previous(item["id"]),
                "item": item,
            }
        )

    # -- client events ------------------------------------------------------------------------
    def create(self, raw: JsonDict) -> None:
        """``conversation.item.create``: validated, stored, announced."""
        item = dict(raw["item"])
        item_id = item.get("id") or wire.new_id("item")
        if item_id in self.items:
            raise SessionError(
                f"Item with id '{item_id}' already exists.", "invalid_value", "item.id"
            )
        prev = raw.get("previous_item_id")
        if prev is not None and prev != "root" and prev not in self.items:
            raise SessionError(
                f"Previous item with id '{prev}' not found.", "invalid_value", "previous_item_id"
            )
        item.update(id=item_id, object="realtime.item", status="completed")
        if item.get("type") == "message" and not self._record.responses and not self.user_audio:
            self._record.seeded_items.append(str(item.get("role")))
        if item.get("type") == "function_call" and item.get("call_id"):
            self.call_names[str(item["call_id"])] = str(item.get("name"))
        for content in item.get("content") or []:
            if isinstance(content, dict) and content.get("type") == "input_audio":
                self._item_audio(item_id, content)
        self.add(item)

    def _item_audio(self, item_id: str, content: JsonDict) -> None:
        """An ``input_audio`` part with base64 audio (pcm 24 kHz) counts as that item's audio."""
        audio = content.pop("audio", None)
        content.setdefault("transcript", None)
        if isinstance(audio, str):
            pcm = pcm_from_base64(audio, "item.content.audio", "item.content")
            self.keep_user_audio(item_id, pcm)

    def retrieve(self, item_id: str) -> None:
        self._send({"type": "conversation.item.retrieved", "item": self.get(item_id)})

    def delete(self, item_id: str) -> None:
        self.get(item_id)
        del self.items[item_id]
        self._send({"type": "conversation.item.deleted", "item_id": item_id})

    def truncation(self, raw: JsonDict) -> tuple[JsonDict, int]:
        """The item and the ms a ``conversation.item.truncate`` cuts it to, once checked."""
        item = self.get(raw["item_id"])
        if item.get("role") != "assistant" or raw["content_index"] != 0:
            raise SessionError(
                "Only assistant audio content can be truncated.", "invalid_value", "item_id"
            )
        end_ms = int(raw["audio_end_ms"])
        total_ms = self.assistant_audio_ms.get(item["id"], 0)
        if end_ms > total_ms:
            raise SessionError(
                f"audio_end_ms ({end_ms}) is longer than the item's audio ({total_ms} ms).",
                "invalid_value",
                "audio_end_ms",
            )
        return item, end_ms

    # -- user audio -------------------------------------------------------------------------
    def commit(self, item_id: str, pcm: Pcm, transcribe: bool) -> None:
        """A committed input buffer as a user audio item (then, maybe, its "transcript")."""
        self._send(
            {
                "type": "input_audio_buffer.committed",
                "item_id": item_id,
                "previous_item_id": self.last_id,
            }
        )
        item = {
            "id": item_id,
            "object": "realtime.item",
            "type": "message",
            "status": "completed",
            "role": "user",
            "content": [{"type": "input_audio", "transcript": None}],
        }
        self.keep_user_audio(item_id, pcm)
        self.add(item)
        if transcribe:
            # No speech recognizer runs here: the "transcript" says what was heard, honestly.
            seconds = pcm.size / (SAMPLES_PER_MS * 1000)
            self._send(
                {
                    "type": "conversation.item.input_audio_transcription.completed",
                    "item_id": item_id,
                    "content_index": 0,
                    "transcript": f"[{seconds:.1f} s of audio]",
                    "usage": {"type": "duration", "seconds": round(seconds, 3)},
                }
            )

    def keep_user_audio(self, item_id: str, pcm: Pcm) -> None:
        self.user_audio[item_id] = pcm
        self.user_audio_ms[item_id] = pcm.size // SAMPLES_PER_MS
        while len(self.user_audio) > USER_AUDIO_KEPT:
            self.user_audio.popitem(last=False)

    # -- assistant audio --------------------------------------------------------------------
    def truncated(self, item_id: str, audio_end_ms: int, drop_transcript: bool = True) -> None:
        """The assistant's audio of ``item_id`` was cut at ``audio_end_ms``: the client is told,
        and its transcript goes (OpenAI keeps nothing unheard in the context) unless the caller
        drops it later."""
        if drop_transcript:
            self.drop_transcript(item_id)
        self._send(
            {
                "type": "conversation.item.truncated",
                "item_id": item_id,
                "content_index": 0,
                "audio_end_ms": audio_end_ms,
            }
        )

    def drop_transcript(self, item_id: str) -> None:
        item = self.items.get(item_id)
        if item is not None:
            for content in item.get("content") or []:
                if isinstance(content, dict) and content.get("type") == "output_audio":
                    content["transcript"] = ""
