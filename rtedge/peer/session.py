"""The per-call Realtime session: client events in, server events out, as OpenAI's GA service does.

Event handling is synchronous (the data channel delivers messages in order and each one is handled
to the end before the next), so ordering on the wire is deterministic. Work that takes time (a
response, avatar frames) runs as tasks owned by the call, through ``spawn``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from rtedge.peer import inbound, minimal, sessionconf, wire
from rtedge.peer.audio_in import MIN_COMMIT_MS, SAMPLES_PER_MS, InputAudio, Pcm, VadEvent
from rtedge.peer.audio_out import OutputTrack, Playout
from rtedge.peer.avatar_stream import AvatarStream, Spawn
from rtedge.peer.config import PeerConfig
from rtedge.peer.items import Conversation, pcm_from_base64
from rtedge.peer.loose import Misbehaviour, ending_details
from rtedge.peer.record import CallRecord
from rtedge.peer.response import ResponseRun
from rtedge.peer.sessionconf import SessionError
from rtedge.peer.voice import Voice

JsonDict = dict[str, Any]

log = logging.getLogger(__name__)


class Session:
    """One call's Realtime session, owned by its ``Call``; the ``ResponseHost`` of its replies."""

    def __init__(
        self,
        config: PeerConfig,
        voice: Voice,
        record: CallRecord,
        effective: JsonDict,
        send: Callable[[JsonDict], None],
        spawn: Spawn,
    ) -> None:
        self.config = config
        self.voice = voice
        self.record = record
        self.effective = effective
        self.rtav = any(k in effective for k in sessionconf.RTAV_FIELDS)
        self._send_raw = send
        self._spawn = spawn
        self.items = Conversation(self.send, record)
        self.minimal = config.profile == "minimal"
        self.own_response_pending = False  # minimal: its VAD's reply, due after the active one
        self.input = InputAudio(config.max_input_buffer_s)
        self.input.configure(self._turn_detection())
        self.output = OutputTrack(
            self._on_playout_started, self._on_playout_drained, idle_rtp=not self.minimal
        )
        self.avatar = AvatarStream(
            self.send, self.output.level, config.image_fps, config.image_size, spawn
        )
        self.active: ResponseRun | None = None
        self.audio_produced = False
        self.vad_item_id: str | None = None
        # server_vad idle timer, from the end of a reply: (time.monotonic(), input ms) then
        self.idle_since: tuple[float, int] | None = None
        self.loose = Misbehaviour()  # set by fault injection only
        self.closed = False

    # -- out ------------------------------------------------------------------------------
    def send(self, event: JsonDict) -> None:
        if self.closed:
            return
        event = wire.stamp(event)
        if self.minimal:
            shaped = minimal.reshape(event)
            if shaped is None:
                return
            event = shaped
        self.record.server_event(event["type"])
        if event["type"] == "response.output_image.delta":
            self.record.image_frames += 1
        self._send_raw(self.loose.loosening.apply(event))

    def error(
        self,
        message: str,
        code: str | None,
        param: str | None,
        client_event_id: str | None,
        etype: str = "invalid_request_error",
    ) -> None:
        self.send(wire.error_event(message, code, param, client_event_id, etype))

    def session_created(self) -> None:
        self.send({"type": "session.created", "session": self.effective})

    def close(self) -> None:
        """Stop sending; the call cancels the tasks. No closing events: the channel is going."""
        self.closed = True
        if self.active is not None:
            self.active.finished = True
            self.active = None
        self.output.clear()
        self.output.stop()

    # -- in: data channel -------------------------------------------------------------------
    def handle_message(self, data: str | bytes) -> None:
        if self.closed:
            return
        try:
            event = inbound.decode(data)
        except inbound.BadEvent as bad:
            self.record.client_event(bad.label)
            self.error(bad.message, bad.code, bad.param, bad.event_id)
            return
        self.record.client_event(event.type)
        refusal = self.loose.take_refusal(event.type)
        if refusal is not None:
            self.error(f"Injected refusal of {event.type}.", refusal, None, event.event_id)
            return
        handler = getattr(self, "_on_" + event.type.replace(".", "_"))
        try:
            handler(event.raw, event.event_id)
        except SessionError as err:
            self.error(err.message, err.code, err.param, event.event_id)
        except Exception:
            # Raised here it would reach aiortc's SCTP receive path; the session must survive.
            log.exception("client event %s failed", event.type)
            self.error(
                "The server had an error while processing your event.",
                None,
                None,
                event.event_id,
                etype="server_error",
            )

    # -- client event handlers (names follow the event types) --------------------------------
    def _on_session_update(self, raw: JsonDict, event_id: str | None) -> None:
        update = sessionconf.validate_update(raw["session"], "session", self.rtav)
        sessionconf.check_voice_change(self.effective, update, self.audio_produced)
        self.effective = sessionconf.merge(self.effective, update)
        self.rtav = self.rtav or any(k in update for k in sessionconf.RTAV_FIELDS)
        td_path = update.get("audio", {}).get("input", {})
        if "turn_detection" in td_path:
            self.input.configure(self._turn_detection())
            self.vad_item_id = None
        self.send({"type": "session.updated", "session": self.effective})

    def _on_input_audio_buffer_append(self, raw: JsonDict, event_id: str | None) -> None:
        sessionconf.check_append_format(self.effective)
        self.input.append(pcm_from_base64(raw["audio"], "audio", "audio"))

    def _on_input_audio_buffer_commit(self, raw: JsonDict, event_id: str | None) -> None:
        ms = self.input.buffered_ms
        if ms < MIN_COMMIT_MS:
            raise SessionError(
                "Error committing input audio buffer: buffer too small. Expected at least "
                f"{MIN_COMMIT_MS}ms of audio, but buffer only has {ms:.2f}ms of audio.",
                "input_audio_buffer_commit_empty",
                None,
            )
        self.vad_item_id = None
        if self.input.vad is not None and not self.minimal:  # minimal: its VAD runs on
            self.input.vad.speaking = False
        self.commit(wire.new_id("item"))

    def _on_input_audio_buffer_clear(self, raw: JsonDict, event_id: str | None) -> None:
        if self.minimal:
            raise SessionError(
                "Unsupported event type 'input_audio_buffer.clear'.", "unsupported_event", "type"
            )
        self.input.clear()
        if self.input.vad is not None:
            self.input.vad.speaking = False
        self.vad_item_id = None
        self.send({"type": "input_audio_buffer.cleared"})

    def _on_conversation_item_create(self, raw: JsonDict, event_id: str | None) -> None:
        self.items.create(raw)

    def _on_conversation_item_retrieve(self, raw: JsonDict, event_id: str | None) -> None:
        self.items.retrieve(raw["item_id"])

    def _on_conversation_item_delete(self, raw: JsonDict, event_id: str | None) -> None:
        self.items.delete(raw["item_id"])

    def _on_conversation_item_truncate(self, raw: JsonDict, event_id: str | None) -> None:
        item, end_ms = self.items.truncation(raw)
        for playout in self.output.clear():
            if playout.item_id != item["id"]:
                self.output.play(playout)  # only the truncated item's audio stops
            elif playout.started:
                self._cleared(playout)
        active = self.active
        if active is not None and active.item is not None and active.item["id"] == item["id"]:
            active.finish("cancelled", "client_cancelled")  # its audio is gone: stop generating
        self.items.truncated(item["id"], end_ms)

    def _on_response_create(self, raw: JsonDict, event_id: str | None) -> None:
        if self.active is not None:
            raise SessionError(
                f"Conversation already has an active response in progress: {self.active.id}. "
                "Wait until the response is finished before creating a new one.",
                "conversation_already_has_active_response",
                None,
            )
        params = raw.get("response") or {}
        mods = params.get("output_modalities")
        if isinstance(mods, list) and len(set(mods)) > 1:
            raise SessionError(
                "Invalid value: output_modalities may be ['audio'] or ['text'], not both.",
                "invalid_value",
                "response.output_modalities",
            )
        self.start_response(params)

    def _on_response_cancel(self, raw: JsonDict, event_id: str | None) -> None:
        wanted = raw.get("response_id")
        if self.active is None or (wanted is not None and wanted != self.active.id):
            raise SessionError(
                "Cancellation failed: no active response found.", "response_cancel_not_active", None
            )
        # minimal: a cancel naming a response cuts that response's audio only
        only = wanted if self.minimal and isinstance(wanted, str) else None
        self.stop_audio(cancel_reason="client_cancelled", response_id=only)

    def _on_output_audio_buffer_clear(self, raw: JsonDict, event_id: str | None) -> None:
        # Clearing the buffer also stops a spoken response still being generated (its audio would
        # otherwise start again); a text-only response has no audio and runs on.
        active = self.active
        speaking = active is not None and "audio" in active.modalities
        self.stop_audio(cancel_reason="client_cancelled" if speaking else None)

    def commit(self, item_id: str) -> None:
        """Commit the input buffer as a user audio item (then, maybe, transcription)."""
        transcribe = bool((self.effective["audio"].get("input") or {}).get("transcription"))
        self.items.commit(item_id, self.input.take(), transcribe)

    # -- responses --------------------------------------------------------------------------
    def start_response(self, params: JsonDict) -> ResponseRun:
        self.idle_since = None
        run = ResponseRun(self, params)
        self.active = run
        self.send({"type": "response.created", "response": run.response_object(created=True)})
        ending = self.loose.take_ending()
        if ending is not None:
            details = ending_details(ending)
            run.finish(ending, details.get("reason"), error=details.get("error"))
            return run
        run.task = self._spawn(run.run(), f"response-{run.id}")
        return run

    def response_finished(self, run: ResponseRun) -> None:
        if self.active is run:
            self.active = None
        plan = run.plan
        if run.playout is not None:
            self.items.assistant_audio_ms[run.playout.item_id] = (
                run.playout.queued_samples // SAMPLES_PER_MS
            )
        self.record.responses.append(
            {
                "response_id": run.id,
                "status": run.status,
                "reason": run.reason,
                "kind": plan.kind if plan else None,
                "output_modalities": run.modalities,
                "text": run.sent_text,
                "audio_ms": run.playout.queued_samples // SAMPLES_PER_MS if run.playout else 0,
            }
        )
        if self.own_response_pending and not self.closed:
            self.own_response_pending = False
            self.start_response({})

    def start_playout(self, playout: Playout) -> None:
        self.output.play(playout)

    def stop_audio(self, cancel_reason: str | None, response_id: str | None = None) -> None:
        """Cut the outgoing audio now (the next 20 ms frame is silence), tell the client what was
        cut (``output_audio_buffer.cleared`` + ``conversation.item.truncated``), and cancel the
        response still generating, if any."""
        dropped = self.output.clear(response_id)
        heard: list[str] = []
        for playout in dropped:
            if playout.queued_samples or playout.started:
                self._cleared(playout)
                heard.append(playout.item_id)
                self.items.truncated(playout.item_id, playout.played_ms, drop_transcript=False)
        if self.active is not None and cancel_reason is not None:
            self.active.finish("cancelled", cancel_reason)
        for item_id in heard:  # after the response's end, which still reports what it said
            self.items.drop_transcript(item_id)

    def _cleared(self, playout: Playout) -> None:
        if self.avatar.response_id == playout.response_id:
            self.avatar.stop()
        self.send({"type": "output_audio_buffer.cleared", "response_id": playout.response_id})

    # -- outgoing track callbacks (run inside aiortc's sender loop) ---------------------------
    def _on_playout_started(self, playout: Playout) -> None:
        self.audio_produced = True
        self.send({"type": "output_audio_buffer.started", "response_id": playout.response_id})
        if sessionconf.wants_images(self.effective):
            self.avatar.start(playout.response_id, playout.item_id)

    def _on_playout_drained(self, playout: Playout) -> None:
        if not playout.started:
            return
        # OpenAI starts idle_timeout_ms when the last response's audio has finished playing.
        self.idle_since = (time.monotonic(), self.input.now_ms)
        if self.avatar.response_id == playout.response_id:
            self.avatar.stop()
        self.send({"type": "output_audio_buffer.stopped", "response_id": playout.response_id})

    # -- in: audio --------------------------------------------------------------------------
    def push_audio(self, pcm: Pcm) -> None:
        """One received 20 ms frame (48 kHz mono)."""
        self.record.rtp_frames_in += 1
        if self.closed:
            return
        if self.config.mode == "loopback":
            self.output.feed_live(pcm)
            return
        event = self.input.push(pcm, at=time.monotonic())
        if event is not None:
            self.idle_since = None
            self._vad(event)
        elif self.idle_since is not None:
            self._check_idle()

    def _check_idle(self) -> None:
        """server_vad ``idle_timeout_ms``: no speech that long after a reply -> the buffer is
        committed as a turn (``input_audio_buffer.timeout_triggered``) and a response made."""
        td = self._turn_detection() or {}
        idle = td.get("idle_timeout_ms")
        busy = self.active is not None or self.output.playing is not None
        if td.get("type") != "server_vad" or not isinstance(idle, int) or busy:
            self.idle_since = None
            return
        assert self.idle_since is not None  # push_audio calls only while it is set
        since = self.input.idle_start(*self.idle_since)
        now = self.input.now_ms
        if now - since < idle:
            return
        self.idle_since = None
        item_id = wire.new_id("item")
        self.items.timeout_items.add(item_id)
        self.send(
            {
                "type": "input_audio_buffer.timeout_triggered",
                "audio_start_ms": since,
                "audio_end_ms": now,
                "item_id": item_id,
            }
        )
        self.commit(item_id)
        if td.get("create_response", True):
            self.start_response({})

    def _turn_detection(self) -> JsonDict | None:
        if self.minimal:
            return minimal.turn_detection(self.effective)
        return sessionconf.turn_detection(self.effective)

    def _vad(self, event: VadEvent) -> None:
        td = self._turn_detection() or {}
        if event.kind == "speech_started":
            self.own_response_pending = False
            self.vad_item_id = wire.new_id("item")
            self.send(
                {
                    "type": "input_audio_buffer.speech_started",
                    "audio_start_ms": event.ms,
                    "item_id": self.vad_item_id,
                }
            )
            if td.get("interrupt_response", True) and (
                self.active is not None or self.output.playing is not None
            ):
                self.stop_audio(cancel_reason="turn_detected")
            return
        item_id = self.vad_item_id or wire.new_id("item")
        self.vad_item_id = None
        self.send(
            {
                "type": "input_audio_buffer.speech_stopped",
                "audio_end_ms": event.ms,
                "item_id": item_id,
            }
        )
        self.commit(item_id)
        if td.get("create_response", True) and self.active is None:
            self.start_response({})
        elif td.get("create_response", True) and self.minimal:
            self.own_response_pending = True
