"""A Realtime conversation: how the service's events move the turn, and what else they carry.

rtedge.realtime.turn_flow sends the turn; here are the replies, their transcript and usage, avatar
frames to the display, errors and refusals. The turn is written to ``State`` only: the LED, the
display and captions follow it there.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Protocol

from rtedge.logs import event as log_event
from rtedge.protocol import client
from rtedge.protocol import server as ev
from rtedge.realtime.endings import KNOWN_ERRORS, log_early_end
from rtedge.realtime.session_shape import refused_fields
from rtedge.realtime.turn_flow import (
    COMMIT_ACK_S,
    COMMIT_DELAY_S,
    SENT_KEPT,
    AudioControl,
    Sender,
    TurnFlow,
)
from rtedge.realtime.usage import count_usage
from rtedge.state import State, Turn
from rtedge.timers import Timers

log = logging.getLogger(__name__)

#: What ``response.done`` says when a reply ended early.
EARLY_ENDINGS = frozenset({"failed", "incomplete", "cancelled"})


class FrameSink(Protocol):
    def on_image_delta(self, jpeg_b64: str, response_id: str | None) -> None: ...

    def on_image_done(self, response_id: str | None, total_frames: int | None) -> None: ...

    def on_response_done(self, response_id: str | None, *, cancelled: bool = False) -> None: ...


class Conversation(TurnFlow):
    def __init__(
        self,
        state: State,
        audio: AudioControl,
        *,
        display: FrameSink | None = None,
        hands_free: bool = False,
        log_transcripts: bool = True,
        on_session_expired: Callable[[], None] | None = None,
        session: dict[str, Any] | None = None,
        timers: Timers | None = None,
    ) -> None:
        super().__init__(state, audio, hands_free=hands_free, session=session, timers=timers)
        self._display = display
        self._log_transcripts = log_transcripts
        self._on_session_expired = on_session_expired
        self._unasked: set[str] = set()  # responses we cancelled as not asked for
        self._assistant_text: list[str] = []
        self.turns_completed = 0

    def unasked(self, rid: str | None) -> bool:
        """A response cancelled here as not asked for (its text is no part of the talk)."""
        return rid in self._unasked

    # -- server events ---------------------------------------------------------------------

    def on_event(self, event: ev.ServerEvent) -> None:
        # A label per type the service invents would grow without bound, here and in every
        # Prometheus that scrapes the fleet: unknown types share one.
        unknown = isinstance(event, ev.UnknownEvent)
        self._state.events_in["unknown" if unknown else event.type] += 1
        handler = _HANDLERS.get(event.type)
        if handler is not None:
            handler(self, event)
        elif isinstance(event, ev.UnknownEvent):
            self._state.events_bad["unknown_type"] += 1
            log.info("unknown event type %r ignored", event.type[:80])

    def _on_image_delta(self, event: ev.ImageDelta) -> None:
        if self._display is not None:
            self._display.on_image_delta(event.delta, event.response_id)

    def _on_image_done(self, event: ev.ImageDone) -> None:
        if self._display is not None:
            self._display.on_image_done(event.response_id, event.total_frames)

    def _on_session_updated(self, event: ev.SessionUpdated) -> None:
        if self._session_update is None:
            return
        refused = refused_fields(self._session_update["session"], event.session)
        self._set_refused(refused)

    def _set_refused(self, refused: list[str]) -> None:
        if refused and refused != self._state.session_refused:
            log_event(
                log,
                logging.WARNING,
                "session_refused",
                "the service did not take the session as asked: %s",
                "; ".join(refused),
            )
        self._state.update(session_refused=refused)

    def _on_committed(self, event: ev.ServerEvent) -> None:
        if self.held and self._commit_id is None:
            self._service_took_speech = True
        self._committed()

    def _on_response_created(self, event: ev.ResponseCreated) -> None:
        rid = event.response.id if event.response else None
        if not self._hands_free and self._unasked_reply(rid):
            return
        self.response_id = rid
        self._assistant_text = []
        if not self.held:
            self._set_turn(Turn.THINKING)

    def _on_response_done(self, event: ev.ResponseDone) -> None:
        response = event.response or ev.ResponseInfo()
        rid = response.id
        status = response.status
        # A done without an id (a loose service) ends the response in progress.
        if rid is None or rid == self.response_id:
            self.response_id = None
        if self._display is not None:
            self._display.on_response_done(rid, cancelled=status == "cancelled")
        if rid in self._unasked:
            self._unasked.discard(rid)
            return
        if self._assistant_text and self._log_transcripts:
            log_event(
                log,
                logging.INFO,
                "transcript",
                "assistant: %s",
                "".join(self._assistant_text),
                role="assistant",
            )
        self._assistant_text = []
        count_usage(self._state.tokens, response.usage)
        if status in EARLY_ENDINGS:
            log_early_end(rid, status, response.status_details)
        if status != "in_progress":
            self.turns_completed += 1
        if self._tool_outputs_pending:
            self._tool_outputs_pending = False
            self._emit(client.create_response())
            self.replies.asked()
            return
        if not self.playing and not self.held:
            self._set_turn(Turn.IDLE)

    def _on_audio_started(self, event: ev.OutputAudioBuffer) -> None:
        if self.held:
            return  # a reply we are cancelling; its audio is being cleared
        self.audio_playing = True
        self._set_turn(Turn.SPEAKING)

    def _on_audio_ended(self, event: ev.OutputAudioBuffer) -> None:
        self.audio_playing = False
        if not self.held and not self.voice:  # still audible: the detector ends the turn
            self._set_turn(Turn.THINKING if self.response_id else Turn.IDLE)

    def on_voice(self, speaking: bool) -> None:
        """The speaking detector: voice started or stopped at the speaker."""
        self.voice = speaking
        if self.held or (self._hands_free and self._state.turn is Turn.LISTENING):
            return
        if speaking:
            self._set_turn(Turn.SPEAKING)
        elif self._state.turn is Turn.SPEAKING and not self.audio_playing:
            self._set_turn(Turn.THINKING if self.response_id else Turn.IDLE)

    def _on_transcript_delta(self, event: ev.TextDelta) -> None:
        rid = event.response_id
        if rid is not None and (rid in self._unasked or rid != (self.response_id or rid)):
            return  # words of a cancelled or superseded reply, still in flight
        self._assistant_text.append(event.delta)
        # update(), not a plain write: captions and the /kiosk page follow State's listeners
        self._state.update(transcript_assistant="".join(self._assistant_text)[-500:])

    def _on_user_transcript(self, event: ev.InputTranscript) -> None:
        text = event.transcript
        self._state.update(transcript_user=text[-500:])
        if self._log_transcripts and text:
            log_event(log, logging.INFO, "transcript", "user: %s", text, role="user")

    def _on_function_call(self, event: ev.FunctionCallDone) -> None:
        # The device runs no tools; saying so keeps the model from waiting on a call forever.
        self._emit(client.refuse_tool_call(event.call_id, event.name))
        self._tool_outputs_pending = True
        log_event(
            log, logging.INFO, "tool_call", "tool %s refused (no tools on device)", event.name
        )

    def _on_rate_limits(self, event: ev.RateLimitsUpdated) -> None:
        self._state.rate_limits = {
            limit.name[:40]: {
                "limit": limit.limit,
                "remaining": limit.remaining,
                "reset_seconds": limit.reset_seconds,
            }
            for limit in event.rate_limits[:8]
            if limit.name
        }

    def _on_error(self, event: ev.ErrorEvent) -> None:
        err = event.error or ev.ErrorInfo()
        code = err.code
        if code == "conversation_already_has_active_response":
            self.replies.refused()
        if code == "response_cancel_not_active" or self.replies.is_best_effort(err.event_id):
            log.debug("service declined a best-effort event: %s", code)
            return
        if self.response_id is not None and code in _SERVICE_VAD_ANSWERED:
            # A service running its own VAD took the audio and is answering already: our commit
            # finds the buffer empty and our response.create is one too many. Nothing is lost.
            self._drop_commit()
            log.debug("the service's own turn detection answered first: %s", code)
            return
        refused = self._sent.get(err.event_id or "")
        self._log_service_error(code, f" answering {refused}" if refused else "", err.message)
        self._state.events_bad[f"error:{code}" if code in KNOWN_ERRORS else "error:other"] += 1
        if code == "session_expired" and self._on_session_expired is not None:
            self._on_session_expired()
            return
        if refused is None and code == "input_audio_buffer_commit_empty":
            refused = "input_audio_buffer.commit"  # a service that does not echo our event_id
        if refused is not None:
            self._refused(refused, err)

    def _refused(self, etype: str, err: ev.ErrorInfo) -> None:
        """The service refused one of our events: end what it would have started."""
        if etype == "session.update":
            why = f"{err.code}: {(err.message or '')[:80]}"
            self._set_refused([f"{err.param or 'session'} ({why})"])
            return
        if etype == "input_audio_buffer.commit":
            if self._service_took_speech and err.code == "input_audio_buffer_commit_empty":
                # The user paused before letting go and the service's VAD took the speech then:
                # it is in the conversation, so it still gets its reply.
                self._service_took_speech = False
                self._committed()
                return
            # Nothing usable was said: no response.create, and no reply is coming.
            self._drop_commit()
        elif etype == "conversation.item.create":
            self._tool_outputs_pending = False
        elif etype != "response.create":
            return
        if self.response_id is None and not self.audio_playing and not self.held:
            self._set_turn(Turn.IDLE)

    def _on_speech_started(self, event: ev.ServerEvent) -> None:
        if self._hands_free:
            self.audio_playing = False
            self._audio.flush()
            self._set_turn(Turn.LISTENING)

    def _on_speech_stopped(self, event: ev.ServerEvent) -> None:
        if self._hands_free:
            self._set_turn(Turn.THINKING)

    def _unasked_reply(self, rid: str | None) -> bool:
        """A response the service started on its own (its VAD): see rtedge.realtime.replies.
        True when it was cancelled here and must be ignored."""
        verdict = self.replies.on_created(
            held=self.held,
            # our commit sent but not yet acknowledged counts: the service's VAD took the
            # buffer first, so ours will come back empty and this reply is the turn's answer
            commit_pending=self.commit_pending,
            ours_generating=self.response_id is not None or self.playing,
        )
        if verdict == "accept":
            return False
        if verdict == "take_over":  # the service answered the turn first: that is the reply
            self._cancel_commit()  # no response.create when an ack (or its timer) comes
            log_event(log, logging.INFO, "service_reply", "the service answered the turn itself")
            return False
        self._emit_best_effort(client.event("response.cancel", response_id=rid))
        if verdict == "cancel_and_clear" or self.held:
            self._emit_best_effort(client.clear_output())
            self._audio.flush()
        if rid:
            self._unasked.add(rid)
            if len(self._unasked) > 16:
                self._unasked.pop()
        log_event(log, logging.INFO, "unasked_reply", "a reply nobody asked for was cancelled")
        return True


_SERVICE_VAD_ANSWERED = frozenset(
    {"input_audio_buffer_commit_empty", "conversation_already_has_active_response"}
)

_HANDLERS: dict[str, Callable[[Conversation, Any], None]] = {
    ev.IMAGE_DELTA: Conversation._on_image_delta,
    ev.IMAGE_DONE: Conversation._on_image_done,
    "session.updated": Conversation._on_session_updated,
    "input_audio_buffer.committed": Conversation._on_committed,
    "response.created": Conversation._on_response_created,
    "response.done": Conversation._on_response_done,
    "output_audio_buffer.started": Conversation._on_audio_started,
    "output_audio_buffer.stopped": Conversation._on_audio_ended,
    "output_audio_buffer.cleared": Conversation._on_audio_ended,
    "response.output_audio_transcript.delta": Conversation._on_transcript_delta,
    "response.output_text.delta": Conversation._on_transcript_delta,
    "conversation.item.input_audio_transcription.completed": Conversation._on_user_transcript,
    "response.function_call_arguments.done": Conversation._on_function_call,
    "rate_limits.updated": Conversation._on_rate_limits,
    "input_audio_buffer.speech_started": Conversation._on_speech_started,
    "input_audio_buffer.speech_stopped": Conversation._on_speech_stopped,
    "error": Conversation._on_error,
}


__all__ = [
    "COMMIT_ACK_S",
    "COMMIT_DELAY_S",
    "EARLY_ENDINGS",
    "SENT_KEPT",
    "AudioControl",
    "Conversation",
    "FrameSink",
    "Sender",
]
