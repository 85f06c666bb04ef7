"""One response: decide what to say, then stream it with OpenAI's GA event sequence.

Audio: ``response.created`` -> ``output_item.added`` (+ ``conversation.item.added``) ->
``content_part.added`` -> ``output_audio_transcript.delta``... -> ``output_audio.done`` ->
``output_audio_transcript.done`` -> ``content_part.done`` -> ``output_item.done``
(+ ``conversation.item.done``) -> ``response.done`` -> ``rate_limits.updated``. The audio itself
goes to the call's outgoing track; generation stays at most ``generation_lead_s`` ahead of what has
been sent, so, as on OpenAI, ``response.done`` comes before playback ends and
``output_audio_buffer.stopped`` (sent by the session when the track drains) comes last.
Text-only responses use ``output_text.*``; tool calls use ``function_call_arguments.*``.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any, Final, Literal, Protocol

from rtedge.peer import brain, sessionconf, wire
from rtedge.peer.audio_in import RATE, Pcm
from rtedge.peer.audio_out import Playout
from rtedge.peer.config import PeerConfig
from rtedge.peer.items import Conversation
from rtedge.peer.record import CallRecord
from rtedge.peer.voice import Voice, word_times

JsonDict = dict[str, Any]
CHUNK_SAMPLES: Final = RATE // 10  # audio is handed to the track 100 ms at a time
TEXT_DELTA_GAP_S: Final = 0.005  # text and argument deltas stream, they do not arrive as one

log = logging.getLogger(__name__)


class ResponseHost(Protocol):
    """What a response needs from its session (``Session`` is one): the settings it answers
    with, the conversation it reads and adds to, and where its events and audio go."""

    @property
    def config(self) -> PeerConfig: ...
    @property
    def effective(self) -> JsonDict: ...
    @property
    def voice(self) -> Voice: ...
    @property
    def record(self) -> CallRecord: ...
    @property
    def items(self) -> Conversation: ...
    def send(self, event: JsonDict) -> None: ...
    def start_playout(self, playout: Playout) -> None: ...
    def response_finished(self, run: ResponseRun) -> None: ...


@dataclass(slots=True)
class Plan:
    kind: Literal["audio", "text", "tool"]
    text: str = ""
    pcm: Pcm | None = None  # echo: the exact audio to send back
    tool: JsonDict | None = None
    arguments: str = ""
    incomplete: bool = False  # cut by max_output_tokens
    input_text_tokens: int = 0
    input_audio_tokens: int = 0


class ResponseRun:
    def __init__(self, session: ResponseHost, params: JsonDict) -> None:
        self.s = session
        self.params = params
        self.id = wire.new_id("resp")
        eff = session.effective
        self.in_conversation = params.get("conversation", "auto") != "none"
        self.modalities: list[str] = list(
            params.get("output_modalities") or eff.get("output_modalities") or ["audio"]
        )
        out = (params.get("audio") or {}).get("output") or {}
        self.voice = str(out.get("voice") or sessionconf.output_voice(eff))
        self.metadata = params.get("metadata")
        limit = params.get("max_output_tokens", eff.get("max_output_tokens"))
        self.max_tokens: int | str = limit if isinstance(limit, int) else "inf"
        self.item: JsonDict | None = None
        self.part_open = False
        self.sent_text = ""  # transcript / text delivered in deltas so far
        self.playout: Playout | None = None
        self.plan: Plan | None = None
        self.finished = False
        self.task: asyncio.Task[None] | None = None
        self.status = "in_progress"
        self.reason: str | None = None

    # -- plan ---------------------------------------------------------------------------
    def make_plan(self) -> Plan:
        """Choose the reply from the conversation (or ``response.input``) without any model."""
        s = self.s
        context: list[JsonDict] = s.items.values() if self.in_conversation else []
        context += [i for i in self.params.get("input") or [] if isinstance(i, dict)]
        last = context[-1] if context else None
        in_text, in_audio = _input_tokens(context, s.items.user_audio_ms)
        plan: Plan
        said = brain.instructed(self.params.get("instructions"))
        said = said or brain.instructed(s.effective.get("instructions"))
        kind: Literal["audio", "text"] = "text" if self.modalities == ["text"] else "audio"
        if s.config.mode == "echo" and kind == "audio" and last is not None:
            pcm = s.items.user_audio.get(str(last.get("id")))
            if pcm is not None:
                return Plan("audio", "", pcm, input_audio_tokens=in_audio)
        if said:
            plan = Plan(kind, said)
        elif last is not None and last.get("type") == "function_call_output":
            name = s.items.call_names.get(str(last.get("call_id")), "function")
            plan = Plan(kind, brain.reply_to_tool_output(name, str(last.get("output", ""))))
        elif last is not None and last.get("type") == "message" and last.get("role") == "user":
            text = brain.user_text(last)
            audio_ms = s.items.user_audio_ms.get(str(last.get("id")), 0)
            tools = sessionconf.function_tools(
                {"tools": self.params["tools"]} if "tools" in self.params else s.effective
            )
            choice = self.params.get("tool_choice", s.effective.get("tool_choice", "auto"))
            tool = brain.pick_tool(text, tools, choice) if text else None
            if tool is not None:
                plan = Plan("tool", tool=tool, arguments=brain.tool_arguments(text, tool))
            elif last.get("id") in s.items.timeout_items:
                plan = Plan(kind, brain.IDLE_PROMPT)
            elif text and brain.asks_recall(text):
                plan = Plan(kind, brain.recall(brain.earlier_user_text(context[:-1])))
            elif text:
                plan = Plan(kind, brain.reply_to_text(text))
            elif audio_ms:
                earlier = brain.earlier_user_text(context[:-1]) if s.record.seeded_items else None
                plan = Plan(kind, brain.reply_to_audio(audio_ms / 1000.0, earlier))
            else:
                plan = Plan(kind, "I did not catch that.")
        else:
            plan = Plan(kind, "Hello! How can I help?")
        if isinstance(self.max_tokens, int) and plan.kind != "tool":
            words = plan.text.split()
            if len(words) > self.max_tokens:
                plan.text = " ".join(words[: self.max_tokens])
                plan.incomplete = True
        plan.input_text_tokens, plan.input_audio_tokens = in_text, in_audio
        return plan

    # -- run ----------------------------------------------------------------------------
    async def run(self) -> None:
        try:
            self.plan = plan = self.make_plan()
            if plan.kind == "tool":
                await self._tool_call(plan)
            elif plan.kind == "text":
                await self._text(plan)
            else:
                await self._audio(plan)
            status = "incomplete" if plan.incomplete else "completed"
            self.finish(status, "max_output_tokens" if plan.incomplete else None)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.exception("response %s failed", self.id)
            self.finish(
                "failed",
                None,
                error={"type": "server_error", "code": None, "message": f"response failed: {exc}"},
            )

    def _open_item(self, item: JsonDict) -> None:
        self.item = item
        self.s.send(
            {
                "type": "response.output_item.added",
                "response_id": self.id,
                "output_index": 0,
                "item": item,
            }
        )
        if self.in_conversation:
            self.s.items.add(item, announce_done=False)

    def _message_item(self) -> JsonDict:
        return {
            "id": wire.new_id("item"),
            "object": "realtime.item",
            "type": "message",
            "status": "in_progress",
            "role": "assistant",
            "content": [],
        }

    async def _text(self, plan: Plan) -> None:
        self._open_item(self._message_item())
        self._part("response.content_part.added", {"type": "text", "text": ""})
        for piece, _ in _pieces(plan.text):
            self.sent_text += piece
            self._ids_event("response.output_text.delta", delta=piece)
            await asyncio.sleep(TEXT_DELTA_GAP_S)

    async def _audio(self, plan: Plan) -> None:
        s = self.s
        if plan.pcm is not None:
            pcm = plan.pcm
            words: tuple[tuple[str, float], ...] = ()
        else:
            speed = float(((s.effective.get("audio") or {}).get("output") or {}).get("speed") or 1)
            speech = await s.voice.speak(plan.text, self.voice, speed)
            pcm, words = speech.pcm, speech.words
        item = self._message_item()
        self._open_item(item)
        self._part("response.content_part.added", {"type": "audio", "transcript": ""})
        self.playout = Playout(self.id, item["id"])
        s.start_playout(self.playout)
        lead = s.config.generation_lead_s
        next_word = 0
        pos = 0
        while pos < pcm.size:
            while self.playout.unplayed_s >= lead:
                # Wait for the track to send more: generation stays ``lead`` ahead of playback.
                self.playout.progress.clear()
                await self.playout.progress.wait()
            step = max(CHUNK_SAMPLES, int(lead * RATE) if pos == 0 else 0)
            self.playout.add(pcm[pos : pos + step])
            pos += step
            while next_word < len(words) and words[next_word][1] * RATE <= pos:
                piece = words[next_word][0]
                self.sent_text += piece
                self._ids_event("response.output_audio_transcript.delta", delta=piece)
                next_word += 1
            await asyncio.sleep(0)
        for piece, _ in words[next_word:]:
            self.sent_text += piece
            self._ids_event("response.output_audio_transcript.delta", delta=piece)

    async def _tool_call(self, plan: Plan) -> None:
        assert plan.tool is not None
        call_id = wire.new_id("call", 8)
        name = str(plan.tool["name"])
        item = {
            "id": wire.new_id("item"),
            "object": "realtime.item",
            "type": "function_call",
            "status": "in_progress",
            "name": name,
            "call_id": call_id,
            "arguments": "",
        }
        self.s.items.call_names[call_id] = name
        self._open_item(item)
        for i in range(0, len(plan.arguments), 8):
            piece = plan.arguments[i : i + 8]
            self.sent_text += piece
            self.s.send(
                {
                    "type": "response.function_call_arguments.delta",
                    "response_id": self.id,
                    "item_id": item["id"],
                    "output_index": 0,
                    "call_id": call_id,
                    "delta": piece,
                }
            )
            await asyncio.sleep(TEXT_DELTA_GAP_S)

    # -- finish ---------------------------------------------------------------------------
    def finish(self, status: str, reason: str | None, error: JsonDict | None = None) -> None:
        """Close whatever is open and send ``response.done``. Synchronous, so a cancel takes
        effect before the next client event is read. Idempotent."""
        if self.finished:
            return
        self.finished = True
        self.status, self.reason = status, reason
        if self.task is not None and self.task is not asyncio.current_task():
            self.task.cancel()
        if self.playout is not None:
            self.playout.finished = True
        item = self.item
        item_status = "completed" if status == "completed" else "incomplete"
        text = self.sent_text
        if item is not None and item["type"] == "function_call":
            item.update(status=item_status, arguments=text)
            self.s.send(
                {
                    "type": "response.function_call_arguments.done",
                    "response_id": self.id,
                    "item_id": item["id"],
                    "output_index": 0,
                    "call_id": item["call_id"],
                    "name": item["name"],
                    "arguments": text,
                }
            )
        elif item is not None and self.part_open:
            if self.playout is not None:
                part = {"type": "audio", "transcript": text}
                item["content"] = [{"type": "output_audio", "transcript": text}]
                self._ids_event("response.output_audio.done")
                self._ids_event("response.output_audio_transcript.done", transcript=text)
            else:
                part = {"type": "text", "text": text}
                item["content"] = [{"type": "output_text", "text": text}]
                self._ids_event("response.output_text.done", text=text)
            self._part("response.content_part.done", part)
        if item is not None:
            item["status"] = item_status
            self.s.send(
                {
                    "type": "response.output_item.done",
                    "response_id": self.id,
                    "output_index": 0,
                    "item": item,
                }
            )
            if self.in_conversation:
                self.s.items.done(item)
        details: JsonDict | None = None
        if status != "completed":
            details = {"type": status, "reason": reason}
            if error is not None:
                details = {"type": "failed", "error": error}
        self.s.send({"type": "response.done", "response": self.response_object(details)})
        self.s.send(wire.rate_limits())
        self.s.response_finished(self)

    def response_object(self, details: JsonDict | None = None, created: bool = False) -> JsonDict:
        plan = self.plan
        usage = None
        if not created:
            out_audio = 0
            if self.playout is not None:
                out_audio = int(self.playout.queued_samples / RATE * 10)
            usage = wire.usage(
                plan.input_text_tokens if plan else 0,
                plan.input_audio_tokens if plan else 0,
                len(self.sent_text.split()),
                out_audio,
            )
        return wire.response_object(
            self.id,
            status="in_progress" if created else self.status,
            conversation_id=self.s.items.id if self.in_conversation else None,
            output_modalities=self.modalities,
            voice=self.voice,
            output=[] if created or self.item is None else [self.item],
            status_details=details,
            usage=usage,
            metadata=self.metadata,
            max_output_tokens=self.max_tokens,
        )

    def _part(self, etype: str, part: JsonDict) -> None:
        assert self.item is not None
        self.part_open = True
        self.s.send(
            {
                "type": etype,
                "response_id": self.id,
                "item_id": self.item["id"],
                "output_index": 0,
                "content_index": 0,
                "part": part,
            }
        )

    def _ids_event(self, etype: str, **fields: Any) -> None:
        assert self.item is not None
        self.s.send(
            {
                "type": etype,
                "response_id": self.id,
                "item_id": self.item["id"],
                "output_index": 0,
                "content_index": 0,
                **fields,
            }
        )


def _pieces(text: str) -> tuple[tuple[str, float], ...]:
    return word_times(text, 0.0)


def _input_tokens(context: list[JsonDict], audio_ms: dict[str, int]) -> tuple[int, int]:
    """Estimated input tokens: a word of text is one, a second of audio ten."""
    text = audio = 0
    for item in context:
        audio += audio_ms.get(str(item.get("id")), 0) // 100
        for c in item.get("content") or []:
            if isinstance(c, dict):
                text += len(str(c.get("text") or c.get("transcript") or "").split())
        text += len(str(item.get("output") or item.get("arguments") or "").split())
    return text, audio
