"""The per-call GPT-Live session of the peer: a full-duplex stand-in for ``gpt-live-1``.

No turn machinery: the peer's own VAD decides when the user has finished and it replies by itself
(transcript deltas with session-relative times, no speaking events), it yields within a frame when
it hears the user over its own voice, and the session ends with ``session.closed`` (on
``session.close``, or ``expired`` at the cap). Shapes follow ``openai.types.live``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any, Final

from rtedge.media.dsp import dbfs
from rtedge.peer import brain, inbound, wire
from rtedge.peer.audio_in import RATE, SAMPLES_PER_MS, VOICED_DBFS, InputAudio, Pcm, VadEvent
from rtedge.peer.audio_out import LiveOutput, Playout
from rtedge.peer.avatar_stream import Spawn
from rtedge.peer.config import PeerConfig
from rtedge.peer.live_tools import Delegations
from rtedge.peer.loose import Misbehaviour
from rtedge.peer.record import CallRecord
from rtedge.peer.sessionconf import SessionError
from rtedge.peer.voice import Speech, Voice, output_delta
from rtedge.protocol.live_catalog import CLIENT_EVENT_TYPES
from rtedge.protocol.strict_live import client_event_adapter

JsonDict = dict[str, Any]
CHUNK_SAMPLES: Final = 960
CONTEXT_TOKENS: Final = 128_000
TOKENS_PER_S: Final = 25  # a rough audio-token rate for the context usage ratio
CLOSE_DRAIN_S: Final = 10.0  # an active reply may finish before session.closed
#: Commands a closing session rejects (the service stops new work once close is requested).
_AFTER_CLOSE_OK: Final = frozenset({"session.close"})

log = logging.getLogger(__name__)


class LiveSession:
    def __init__(
        self,
        config: PeerConfig,
        voice: Voice,
        record: CallRecord,
        resource: JsonDict,
        send: Callable[[JsonDict], None],
        spawn: Spawn,
        close_soon: Callable[[str, bool], None],
    ) -> None:
        self.config = config
        self.voice = voice
        self.record = record
        self.resource = resource
        self._send_raw = send
        self._spawn = spawn
        self._close_soon = close_soon
        self.output = LiveOutput(self._on_started, self._on_drained)
        self.input = InputAudio(config.max_input_buffer_s)
        self.input.configure({"type": "server_vad", "silence_duration_ms": config.live_silence_ms})
        self.loose = Misbehaviour()
        self.muted = False
        self.closing = False
        self.closed = False
        self.started_at = time.monotonic()
        self.reply: asyncio.Task[None] | None = None
        self.playout: Playout | None = None
        self.speech_start_ms = 0
        self.delegations = Delegations(self)
        record.live = {"muted": False, "yields": [], "replies": 0, "close_reason": None}
        # session.input recorded as a Realtime call's seed; replies to audio recall its words
        record.seeded_items = [str(i.get("role")) for i in resource.get("input") or []]
        self.earlier = brain.earlier_user_text(resource.get("input") or []) or None

    # -- out ------------------------------------------------------------------------------
    def send(self, event: JsonDict) -> None:
        if self.closed:
            return
        event = wire.stamp(event)
        self.record.server_event(event["type"])
        self._send_raw(self.loose.loosening.apply(event))

    def error(
        self, message: str, code: str, param: str | None, client_event_id: str | None
    ) -> None:
        body = {"type": "invalid_request_error", "code": code, "message": message, "param": param}
        if client_event_id is not None:
            body["client_event_id"] = client_event_id
        event: JsonDict = {"type": "error", "error": body}
        if client_event_id is not None:
            event["client_event_id"] = client_event_id
        self.send(event)

    def ack(self, etype: str, client_event_id: str | None, **fields: Any) -> None:
        event: JsonDict = {"type": etype, **fields}
        if client_event_id is not None:
            event["client_event_id"] = client_event_id
        self.send(event)

    def now_ms(self) -> int:
        """Milliseconds on the session timeline (from session start)."""
        return int((time.monotonic() - self.started_at) * 1000)

    def usage(self) -> JsonDict:
        return {"seconds": round(time.monotonic() - self.started_at, 3)}

    def session_created(self) -> None:
        """The data channel opened: ``session.started`` (and usage updates from now on)."""
        self.started_at = time.monotonic()
        self._spawn(self._start(), "live-start")

    async def _start(self) -> None:
        if self.config.live_start_delay_s > 0:
            await asyncio.sleep(self.config.live_start_delay_s)
        self.send({"type": "session.started", "session": self.resource})
        await self._usage_loop()

    async def _usage_loop(self) -> None:
        while not self.closed:
            await asyncio.sleep(self.config.live_usage_interval_s)
            seconds = time.monotonic() - self.started_at
            ratio = min(1.0, seconds * TOKENS_PER_S / CONTEXT_TOKENS)
            self.send(
                {
                    "type": "session.usage.updated",
                    "usage": self.usage(),
                    "context_window": {"usage_ratio": round(ratio, 6)},
                }
            )

    def close(self) -> None:
        """Stop sending; the call cancels the tasks."""
        self.closed = True
        self.delegations.close()
        self.output.clear()
        self.output.stop()

    def end(self, reason: str) -> None:
        """``session.closed`` with ``reason`` and the final usage, then the call goes."""
        if self.closed:
            return
        self.record.live["close_reason"] = reason
        self.send(
            {
                "type": "session.closed",
                "reason": reason,
                "session": self.resource,
                "usage": self.usage(),
            }
        )
        self.closed = True
        self._close_soon(reason, True)

    def expire(self) -> None:
        self._interrupt(None)
        self.end("expired")

    # -- in: data channel -------------------------------------------------------------------
    def handle_message(self, data: str | bytes) -> None:
        if self.closed:
            return
        try:
            event = inbound.decode(data, CLIENT_EVENT_TYPES, client_event_adapter)
        except inbound.BadEvent as bad:
            self.record.client_event(bad.label)
            self.error(bad.message, bad.code, bad.param, bad.event_id)
            return
        self.record.client_event(event.type)
        refusal = self.loose.take_refusal(event.type)
        if refusal is not None:
            self.error(f"Injected refusal of {event.type}.", refusal, None, event.event_id)
            return
        if self.closing and event.type not in _AFTER_CLOSE_OK:
            self.error("The session is closing.", "session_closing", None, event.event_id)
            return
        handler = getattr(self, "_on_" + event.type.replace(".", "_"), None)
        if handler is None:
            self.error(
                f"'{event.type}' is not supported on a WebRTC session.",
                "unsupported_event",
                "type",
                event.event_id,
            )
            return
        try:
            handler(event.raw, event.event_id)
        except SessionError as err:
            self.error(err.message, err.code or "invalid_value", err.param, event.event_id)
        except Exception:
            log.exception("live client event %s failed", event.type)
            self.error("The server had an error.", "server_error", None, event.event_id)

    def _on_session_start(self, raw: JsonDict, event_id: str | None) -> None:
        raise SessionError(
            "session.start is only for WebSocket connections: a WebRTC session has already "
            "started with its create request.",
            "invalid_event",
            "type",
        )

    def _on_session_input_audio_append(self, raw: JsonDict, event_id: str | None) -> None:
        raise SessionError(
            "session.input_audio.append is only for WebSocket connections: send audio on the "
            "media track.",
            "invalid_event",
            "type",
        )

    def _on_session_input_audio_mute(self, raw: JsonDict, event_id: str | None) -> None:
        self.muted = self.record.live["muted"] = True
        self.ack("session.input_audio.muted", event_id)

    def _on_session_input_audio_unmute(self, raw: JsonDict, event_id: str | None) -> None:
        self.muted = self.record.live["muted"] = False
        self.ack("session.input_audio.unmuted", event_id)

    def _on_session_instructions_append(self, raw: JsonDict, event_id: str | None) -> None:
        self._check_delegation_id(raw)
        start = self.now_ms()
        self.ack("session.instructions.appended", event_id, start_ms=start, end_ms=start + 1)
        self._interrupt(None)  # an appended instruction can interrupt speech in progress
        said = brain.instructed(str(raw["content"]))
        if said:
            self.speak(said)

    def _on_session_thinking_append(self, raw: JsonDict, event_id: str | None) -> None:
        self._check_delegation_id(raw)
        start = self.now_ms()
        self.ack("session.thinking.appended", event_id, start_ms=start, end_ms=start + 1)
        self.delegations.client_appended("thinking", raw.get("delegation_id"), raw["content"])

    def _on_session_commentary_append(self, raw: JsonDict, event_id: str | None) -> None:
        self._check_delegation_id(raw)
        start = self.now_ms()
        self.ack("session.commentary.appended", event_id, start_ms=start, end_ms=start + 1)
        self.delegations.client_appended("commentary", raw.get("delegation_id"), raw["content"])
        self.speak(str(raw["content"]))  # commentary is meant to be spoken

    def _on_session_update(self, raw: JsonDict, event_id: str | None) -> None:
        update = raw.get("session") or {}
        delegation = update.get("delegation")
        current = (self.resource.get("delegation") or {}).get("type", "client")
        if delegation is not None and delegation.get("type") != current:
            raise SessionError(
                "The delegation type cannot change after session startup.",
                "immutable_field_update",
                "session.delegation.type",
            )
        self.ack("session.updated", event_id, session=self.resource)

    def _on_session_close(self, raw: JsonDict, event_id: str | None) -> None:
        if self.closing:
            return
        self.closing = True
        self._spawn(self._close_after_reply(), "live-close")

    async def _close_after_reply(self) -> None:
        # An active reply may finish and drain (as the service lets it), bounded.
        reply, playout = self.reply, self.playout
        if reply is not None:
            with contextlib.suppress(TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(asyncio.shield(reply), CLOSE_DRAIN_S)
        deadline = time.monotonic() + CLOSE_DRAIN_S
        while playout is not None and playout.unplayed_s > 0 and time.monotonic() < deadline:
            playout.progress.clear()  # set by the track as it sends each frame
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(playout.progress.wait(), 0.5)
        self.end("close_requested")

    def _on_response_item_create(self, raw: JsonDict, event_id: str | None) -> None:
        self.delegations.item_create(raw["item"])

    def _on_response_create(self, raw: JsonDict, event_id: str | None) -> None:
        self.delegations.response_create()

    def _check_delegation_id(self, raw: JsonDict) -> None:
        did = raw.get("delegation_id")
        if did is not None and not self.delegations.is_client(str(did)):
            raise SessionError(
                f"No client delegation with id '{did}'.", "invalid_value", "delegation_id"
            )

    # -- in: audio --------------------------------------------------------------------------
    def push_audio(self, pcm: Pcm) -> None:
        """One received 20 ms frame (48 kHz mono); muted input reaches the model as silence."""
        self.record.rtp_frames_in += 1
        if self.closed:
            return
        if self.config.mode == "loopback":  # a test mode: received audio straight back
            self.output.feed_live(pcm)
            return
        if self.muted:
            # received all the same (input_voiced_s): what the device sent, not what the mute
            # let through, is what its privacy is judged by
            self.input.voiced_samples += pcm.size if dbfs(pcm) > VOICED_DBFS else 0
            pcm = pcm * 0
        event = self.input.push(pcm, at=time.monotonic())
        if self.config.mode != "echo":  # echo keeps the turn (bounded) to play it back
            self.input.clear()  # no buffer to commit: the VAD is all the model needs here
        if event is not None:
            self._vad(event)

    def _vad(self, event: VadEvent) -> None:
        if event.kind == "speech_started":
            self.speech_start_ms = self.now_ms()
            self._interrupt(time.monotonic())
            return
        if self.closing:
            return
        end = self.now_ms()
        seconds = max(0.0, (end - self.speech_start_ms) / 1000.0)
        self.send(
            {
                "type": "session.input_transcript.delta",
                "delta": f"[{seconds:.1f} s of audio]",
                "start_ms": self.speech_start_ms,
                "end_ms": end,
            }
        )
        if self.config.mode == "echo":
            self.speak("", self.input.take())
        elif not self.delegations.maybe_delegate(seconds):
            self.speak(brain.reply_to_audio(seconds, self.earlier))

    # -- speaking ---------------------------------------------------------------------------
    def speak(self, text: str, audio: Pcm | None = None) -> None:
        """Say ``text`` now, or play ``audio`` (echo mode), replacing whatever was being said."""
        if self.closed or not (text or (audio is not None and audio.size)):
            return
        self._interrupt(None)
        self.record.live["replies"] += 1
        self.reply = self._spawn(self._say(text, audio), "live-reply")

    async def _say(self, text: str, audio: Pcm | None = None) -> None:
        if audio is not None:
            speech = Speech(text, audio, (), "echo")
        else:
            voice = ((self.resource.get("audio") or {}).get("output") or {}).get("voice")
            speech = await self.voice.speak(text, voice if isinstance(voice, str) else "marin")
        playout = Playout(wire.new_id("resp"), wire.new_id("item"))
        self.playout = playout
        self.output.play(playout)
        words = speech.words
        pcm = speech.pcm
        lead = self.config.generation_lead_s
        base = self.now_ms()
        next_word = 0
        pos = 0
        try:
            while pos < pcm.size:
                while playout.unplayed_s >= lead:
                    playout.progress.clear()
                    await playout.progress.wait()
                step = max(CHUNK_SAMPLES, int(lead * RATE) if pos == 0 else 0)
                playout.add(pcm[pos : pos + step])
                pos += step
                while next_word < len(words) and words[next_word][1] * RATE <= pos:
                    self.send(output_delta(speech, next_word, base))
                    next_word += 1
                await asyncio.sleep(0)
            for i in range(next_word, len(words)):
                self.send(output_delta(speech, i, base))
        finally:
            playout.finished = True

    def _interrupt(self, heard_at: float | None) -> None:
        """Stop speaking: the next frame sent is silence. ``heard_at``: the user's voice was
        heard then (a barge-in), so how fast the voice stopped is recorded."""
        speaking = self.output.playing is not None
        if self.reply is not None and not self.reply.done():
            self.reply.cancel()
            speaking = True
        self.reply = None
        self.output.clear()
        self.playout = None
        if heard_at is not None and speaking:
            self._spawn(self._note_yield(heard_at), "live-yield")

    async def _note_yield(self, heard_at: float) -> None:
        # The last voiced frame may still be leaving: wait two frames, then read when it went.
        await asyncio.sleep(0.04)
        stopped_ms = max(0.0, (self.output.last_voiced_at - heard_at) * 1000.0)
        self.record.live["yields"].append(round(stopped_ms, 1))

    def _on_started(self, playout: Playout) -> None:
        pass  # GPT-Live sends no speaking events

    def _on_drained(self, playout: Playout) -> None:
        pass

    @property
    def input_ms(self) -> int:
        return self.input.total_samples // SAMPLES_PER_MS
