"""Turn state and push-to-talk over the data channel (PROTOCOL.md §3).

Push-to-talk with turn detection off: press clears the input buffer and, when the assistant is
answering, cancels the response and clears the output buffer (barge-in, with our own playback
flushed at once); while held the mic track carries the mic; release commits and asks for a
response. Hands-free mode leaves turns to the service's ``server_vad``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from typing import Any, Literal, Protocol

from rtedge.logs import event as log_event
from rtedge.realtime.events import IMAGE_DELTA_TYPES, IMAGE_DONE_TYPES, Decoded
from rtedge.realtime.replies import ReplyPolicy
from rtedge.realtime.usage import count_usage
from rtedge.state import State, Turn

log = logging.getLogger(__name__)

#: Mic frames still in flight when the button comes up would miss a commit sent at once.
COMMIT_DELAY_S = 0.08


class AudioControl(Protocol):
    talking: bool

    def flush(self) -> None: ...

    def earcon(self, name: Literal["press", "release"]) -> None: ...


class FrameSink(Protocol):
    def on_image_delta(self, jpeg_b64: str, response_id: str | None) -> None: ...

    def on_image_done(self, response_id: str | None, total_frames: int | None) -> None: ...

    def on_response_done(self, response_id: str | None, *, cancelled: bool = False) -> None: ...

    def set_turn(self, turn: Turn) -> None: ...


Sender = Callable[[dict[str, Any]], bool]


class Conversation:
    def __init__(
        self,
        state: State,
        audio: AudioControl,
        *,
        display: FrameSink | None = None,
        hands_free: bool = False,
        log_transcripts: bool = True,
        on_session_expired: Callable[[], None] | None = None,
    ) -> None:
        self._state = state
        self._audio = audio
        self._display = display
        self._hands_free = hands_free
        self._log_transcripts = log_transcripts
        self._on_session_expired = on_session_expired
        self._send: Sender | None = None
        self.held = False
        self.response_id: str | None = None  # the response in progress, if any
        self.audio_playing = False  # between output_audio_buffer.started and stopped/cleared
        #: Voice at the speaker, from the playout itself (rtedge.audio.speaking): the truth for
        #: the speaking state; the service's output_audio_buffer events only refine it.
        self.voice = False
        self.replies = ReplyPolicy()  # one reply per press with services that run their own VAD
        self._unasked: set[str] = set()  # responses we cancelled as not asked for
        self._tool_outputs_pending = False
        self._assistant_text: list[str] = []
        self._commit_handle: asyncio.TimerHandle | None = None
        self.turns_completed = 0
        #: When the current turn state began (monotonic): liveness is judged from here.
        self.turn_since = time.monotonic()
        audio.talking = hands_free

    # -- call attachment -------------------------------------------------------------------

    def attach(self, send: Sender) -> None:
        """A new call is up. A button still held from the last call starts the turn afresh."""
        self._send = send
        self.response_id = None
        self.audio_playing = False
        self.replies.reset()
        self._tool_outputs_pending = False
        if self.held and not self._hands_free:
            self._emit({"type": "input_audio_buffer.clear"})
            self._set_turn(Turn.LISTENING)
        else:
            self._set_turn(Turn.IDLE)

    def detach(self) -> None:
        self._send = None
        if self._commit_handle is not None:
            self._commit_handle.cancel()
            self._commit_handle = None
        self.response_id = None
        if self.audio_playing:
            self._audio.flush()
        self.audio_playing = False
        if not self.held:
            self._set_turn(Turn.IDLE)

    @property
    def awaiting_response(self) -> bool:
        return self._state.turn is Turn.THINKING

    @property
    def playing(self) -> bool:
        """A reply is audible, or the service says it is sending one."""
        return self.voice or self.audio_playing

    @property
    def quiet(self) -> bool:
        """Nothing in flight: a session can be rotated now without cutting a turn."""
        return (
            not self.held
            and self.response_id is None
            and not self.audio_playing
            and not self.voice
            and self._commit_handle is None
            and self._state.turn is Turn.IDLE
        )

    # -- push-to-talk ----------------------------------------------------------------------

    def press(self) -> None:
        if self.held:
            return
        self.held = True
        self._state.update(ptt_held=True)
        self._audio.earcon("press")
        if self._hands_free:
            return
        if self._commit_handle is not None:  # pressed again before the last commit went out
            self._commit_handle.cancel()
            self._commit_handle = None
        self.replies.reset()
        # Best-effort events: a service may not support them or have nothing to cancel.
        self._emit_best_effort({"type": "input_audio_buffer.clear"})
        # What is audible is cut, whatever the service said: a reply it called done may still
        # be playing (an early response.done), so cancel whenever voice is heard too.
        if self.response_id is not None or self.voice:
            self._emit_best_effort({"type": "response.cancel"})
        if self.playing or self.response_id is not None:
            self._emit_best_effort({"type": "output_audio_buffer.clear"})
            log_event(log, logging.INFO, "barge_in", "barge-in: reply cut by a press")
        self._audio.flush()  # our own buffer goes at once, whatever the service does
        self.audio_playing = False
        self.voice = False
        self._audio.talking = True
        self._set_turn(Turn.LISTENING)
        if self._send is None:
            log.warning("push-to-talk pressed while not connected: speech will not be sent")

    def release(self) -> None:
        if not self.held:
            return
        self.held = False
        self._state.update(ptt_held=False)
        self._audio.earcon("release")
        if self._hands_free:
            return
        self._audio.talking = False
        if self._send is None:
            self._set_turn(Turn.IDLE)
            return
        self._set_turn(Turn.THINKING)
        loop = asyncio.get_running_loop()
        self._commit_handle = loop.call_later(COMMIT_DELAY_S, self._commit)

    def _commit(self) -> None:
        self._commit_handle = None
        if self._send is None:
            self._set_turn(Turn.IDLE)
            return
        self._emit({"type": "input_audio_buffer.commit"})
        self._emit({"type": "response.create"})
        self.replies.asked()
        log_event(log, logging.INFO, "turn", "turn sent; waiting for the reply")

    # -- server events ---------------------------------------------------------------------

    def on_event(self, ev: Decoded) -> None:
        t = ev.type
        raw = ev.raw
        known = (
            ev.model is not None
            or t in _HANDLERS
            or t in IMAGE_DELTA_TYPES
            or t in IMAGE_DONE_TYPES
        )
        # A label per type the service invents would grow without bound, here and in every
        # Prometheus that scrapes the fleet: unknown types share one.
        self._state.events_in[t if known else "unknown"] += 1
        if t in IMAGE_DELTA_TYPES:
            if self._display is not None:
                self._display.on_image_delta(str(raw.get("delta", "")), raw.get("response_id"))
            return
        if t in IMAGE_DONE_TYPES:
            if self._display is not None:
                self._display.on_image_done(raw.get("response_id"), raw.get("total_frames"))
            return
        handler = _HANDLERS.get(t)
        if handler is not None:
            handler(self, raw)
        elif ev.model is None:
            self._state.events_bad["unknown_type"] += 1
            log.info("unknown event type %r ignored", t[:80])

    def _on_response_created(self, raw: dict[str, Any]) -> None:
        if not self._hands_free and self._unasked_reply(raw.get("response", {}).get("id")):
            return
        self.response_id = raw.get("response", {}).get("id")
        self._assistant_text = []
        if not self.held:
            self._set_turn(Turn.THINKING)

    def _on_response_done(self, raw: dict[str, Any]) -> None:
        response = raw.get("response", {})
        rid = response.get("id")
        status = response.get("status")
        if rid == self.response_id:
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
        count_usage(self._state.tokens, response.get("usage"))
        if status != "in_progress":
            self.turns_completed += 1
        if self._tool_outputs_pending:
            self._tool_outputs_pending = False
            self._emit({"type": "response.create"})
            self.replies.asked()
            return
        if not self.playing and not self.held:
            self._set_turn(Turn.IDLE)

    def _on_audio_started(self, raw: dict[str, Any]) -> None:
        if self.held:
            return  # a reply we are cancelling; its audio is being cleared
        self.audio_playing = True
        self._set_turn(Turn.SPEAKING)

    def _on_audio_ended(self, raw: dict[str, Any]) -> None:
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

    def _on_transcript_delta(self, raw: dict[str, Any]) -> None:
        self._assistant_text.append(str(raw.get("delta", "")))
        self._state.transcript_assistant = "".join(self._assistant_text)[-500:]

    def _on_user_transcript(self, raw: dict[str, Any]) -> None:
        text = str(raw.get("transcript", ""))
        self._state.transcript_user = text[-500:]
        if self._log_transcripts and text:
            log_event(log, logging.INFO, "transcript", "user: %s", text, role="user")

    def _on_function_call(self, raw: dict[str, Any]) -> None:
        # The device runs no tools; saying so keeps the model from waiting on a call forever.
        name = raw.get("name")
        output = json.dumps({"error": f"tool {name!r} is not available on this device"})
        self._emit(
            {
                "type": "conversation.item.create",
                "item": {
                    "type": "function_call_output",
                    "call_id": raw.get("call_id"),
                    "output": output,
                },
            }
        )
        self._tool_outputs_pending = True
        log_event(log, logging.INFO, "tool_call", "tool %s refused (no tools on device)", name)

    def _on_error(self, raw: dict[str, Any]) -> None:
        err = raw.get("error", {}) if isinstance(raw.get("error"), dict) else {}
        code = err.get("code")
        if code == "conversation_already_has_active_response":
            self.replies.refused()
        if code == "response_cancel_not_active" or self.replies.is_best_effort(err.get("event_id")):
            log.debug("service declined a best-effort event: %s", code)
            return
        log_event(
            log,
            logging.WARNING,
            "service_error",
            "service error %s: %s",
            code,
            str(err.get("message", ""))[:200],
            code=code,
        )
        self._state.events_bad[f"error:{code}" if code in _KNOWN_ERRORS else "error:other"] += 1
        if code == "session_expired" and self._on_session_expired is not None:
            self._on_session_expired()
        elif (
            code == "input_audio_buffer_commit_empty" and self.response_id is None and not self.held
        ):
            # Nothing was said: no reply is coming, so do not sit in "thinking".
            self._set_turn(Turn.IDLE)

    def _on_speech_started(self, raw: dict[str, Any]) -> None:
        if self._hands_free:
            self.audio_playing = False
            self._audio.flush()
            self._set_turn(Turn.LISTENING)

    def _on_speech_stopped(self, raw: dict[str, Any]) -> None:
        if self._hands_free:
            self._set_turn(Turn.THINKING)

    # -- helpers ---------------------------------------------------------------------------

    def _emit(self, event: dict[str, Any]) -> None:
        if self._send is not None:
            self._send(event)

    def _emit_best_effort(self, event: dict[str, Any]) -> None:
        event["event_id"] = self.replies.best_effort_id()
        self._emit(event)

    def _unasked_reply(self, rid: str | None) -> bool:
        """A response the service started on its own (its VAD): see rtedge.realtime.replies.
        True when it was cancelled here and must be ignored."""
        verdict = self.replies.on_created(
            held=self.held,
            commit_pending=self._commit_handle is not None,
            ours_generating=self.response_id is not None or self.playing,
        )
        if verdict == "accept":
            return False
        if verdict == "take_over":  # the service answered the turn first: that is the reply
            if self._commit_handle is not None:
                self._commit_handle.cancel()
                self._commit_handle = None
            log_event(log, logging.INFO, "service_reply", "the service answered the turn itself")
            return False
        self._emit_best_effort({"type": "response.cancel", "response_id": rid})
        if verdict == "cancel_and_clear" or self.held:
            self._emit_best_effort({"type": "output_audio_buffer.clear"})
            self._audio.flush()
        if rid:
            self._unasked.add(rid)
            if len(self._unasked) > 16:
                self._unasked.pop()
        log_event(log, logging.INFO, "unasked_reply", "a reply nobody asked for was cancelled")
        return True

    def _set_turn(self, turn: Turn) -> None:
        if self._state.turn is not turn:
            self.turn_since = time.monotonic()
            self._state.update(turn=turn)
            log_event(log, logging.INFO, "turn_state", "turn: %s", turn.value, turn=turn.value)
            if self._display is not None:
                self._display.set_turn(turn)


_KNOWN_ERRORS = frozenset(
    {
        "session_expired",
        "input_audio_buffer_commit_empty",
        "conversation_already_has_active_response",
        "response_cancel_not_active",
        "invalid_value",
        "unknown_parameter",
        "missing_required_parameter",
        "invalid_json",
        "invalid_event",
    }
)

_HANDLERS: dict[str, Callable[[Conversation, dict[str, Any]], None]] = {
    "response.created": Conversation._on_response_created,
    "response.done": Conversation._on_response_done,
    "output_audio_buffer.started": Conversation._on_audio_started,
    "output_audio_buffer.stopped": Conversation._on_audio_ended,
    "output_audio_buffer.cleared": Conversation._on_audio_ended,
    "response.output_audio_transcript.delta": Conversation._on_transcript_delta,
    "response.output_text.delta": Conversation._on_transcript_delta,
    "conversation.item.input_audio_transcription.completed": Conversation._on_user_transcript,
    "response.function_call_arguments.done": Conversation._on_function_call,
    "input_audio_buffer.speech_started": Conversation._on_speech_started,
    "input_audio_buffer.speech_stopped": Conversation._on_speech_stopped,
    "error": Conversation._on_error,
}
