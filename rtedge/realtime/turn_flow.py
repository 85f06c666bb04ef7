"""Push-to-talk turns on the Realtime data channel: press, commit, reply asked for, barge-in.

What a press, a release and the commit waits send (PROTOCOL.md §3), on an injected clock
(rtedge.timers), and what is remembered of what was sent. Push-to-talk with turn detection off:
press clears the input buffer and, when the assistant is answering, cancels the response and
clears the output buffer (barge-in, with our own playback flushed at once); while held the mic
track carries the mic; release commits and asks for a response. Hands-free mode leaves turns to
the service's ``server_vad``.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, Literal, Protocol

from rtedge.logs import event as log_event
from rtedge.protocol import client
from rtedge.realtime.replies import ReplyPolicy
from rtedge.realtime.turnkeeper import TurnKeeper
from rtedge.state import State, Turn
from rtedge.timers import Timer, Timers

log = logging.getLogger("rtedge.realtime.conversation")

#: Mic frames still in flight when the button comes up would miss a commit sent at once.
COMMIT_DELAY_S = 0.08
#: ``response.create`` waits for ``input_audio_buffer.committed`` (a refused commit must not
#: become a reply to the previous turn), but not for ever: a service that never acknowledges a
#: commit gets its ``response.create`` after this.
COMMIT_ACK_S = 0.5
#: Client events remembered so an ``error`` can be matched to the one it refuses.
SENT_KEPT = 64


class AudioControl(Protocol):
    talking: bool

    def flush(self) -> None: ...

    def earcon(self, name: Literal["press", "release"]) -> None: ...


Sender = Callable[[dict[str, Any]], bool]


class TurnFlow(TurnKeeper):
    """The turn's own sequence; rtedge.realtime.conversation adds how server events move it."""

    _log = log

    def __init__(
        self,
        state: State,
        audio: AudioControl,
        *,
        hands_free: bool = False,
        session: dict[str, Any] | None = None,
        timers: Timers | None = None,
    ) -> None:
        super().__init__(state, audio, timers)
        self._audio = audio
        self._hands_free = hands_free
        #: The session asked for: sent as ``session.update`` on every call, and what
        #: ``session.updated`` is compared with.
        self._session = session
        self._session_update: dict[str, Any] | None = None
        self._send: Sender | None = None
        self.response_id: str | None = None  # the response in progress, if any
        self.audio_playing = False  # between output_audio_buffer.started and stopped/cleared
        #: Voice at the speaker, from the playout itself (rtedge.audio.speaking): the truth for
        #: the speaking state; the service's output_audio_buffer events only refine it.
        self.voice = False
        self.replies = ReplyPolicy()  # one reply per press with services that run their own VAD
        self._tool_outputs_pending = False
        self._commit_handle: Timer | None = None
        #: The commit waiting for its acknowledgement before ``response.create`` goes out.
        self._commit_id: str | None = None
        self._ack_handle: Timer | None = None
        #: A service's own VAD committed speech during this press (its reply was cancelled).
        self._service_took_speech = False
        self._sent: OrderedDict[str, str] = OrderedDict()  # event_id -> type, most recent last
        audio.talking = hands_free

    # -- call attachment -------------------------------------------------------------------

    def attach(self, send: Sender) -> None:
        """A new call is up: configure its session; a button still held from the last call
        starts the turn afresh."""
        self._send = send
        self.response_id = None
        self.audio_playing = False
        self.replies.reset()
        self._tool_outputs_pending = False
        self._sent.clear()
        if self._session is not None:
            self._session_update = client.session_update(self._session)
            self._emit(self._session_update)
        if self.held and not self._hands_free:
            self._emit(client.clear_input())
            self._set_turn(Turn.LISTENING)
        else:
            self._set_turn(Turn.IDLE)

    def configure(self, send: Sender) -> None:
        """A call prepared ahead gets the session at once (turn detection off before it hears
        anything); attach() restates it when the call takes over."""
        if self._session is not None:
            send(client.session_update(self._session))

    def detach(self) -> None:
        self._send = None
        self._cancel_commit()
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
    def commit_pending(self) -> bool:
        """Our commit is about to go out, or went out and awaits its acknowledgement."""
        return self._commit_handle is not None or self._commit_id is not None

    @property
    def quiet(self) -> bool:
        """Nothing in flight: a session can be rotated now without cutting a turn."""
        return (
            not self.held
            and self.response_id is None
            and not self.audio_playing
            and not self.voice
            and not self.commit_pending
            and self._state.turn is Turn.IDLE
        )

    # -- push-to-talk ----------------------------------------------------------------------

    def press(self) -> None:
        if self._button(True) and not self._hands_free:
            self.begin_turn()

    def begin_turn(self, *, open_mic: bool = True) -> None:
        """A turn starts (a press, or a hands-free turn whose gate the capture thread opened
        itself, ``open_mic=False``): cut what is playing, clear the input, listen."""
        self._cancel_commit()  # pressed again before the last commit went out
        self._service_took_speech = False
        self.replies.reset()
        # Best-effort events: a service may not support them or have nothing to cancel.
        self._emit_best_effort(client.clear_input())
        # What is audible is cut, whatever the service said: a reply it called done may still
        # be playing (an early response.done), so cancel whenever voice is heard too.
        if self.response_id is not None or self.voice:
            self._emit_best_effort(client.cancel_response())
        if self.playing or self.response_id is not None:
            self._emit_best_effort(client.clear_output())
            log_event(log, logging.INFO, "barge_in", "barge-in: reply cut by a press")
        self._audio.flush()  # our own buffer goes at once, whatever the service does
        self.audio_playing = False
        self.voice = False
        if open_mic:
            self._audio.talking = True
        self._set_turn(Turn.LISTENING)
        if self._send is None:
            log.warning("push-to-talk pressed while not connected: speech will not be sent")

    def release(self) -> None:
        if self._button(False) and not self._hands_free:
            self.end_turn()

    def end_turn(self) -> None:
        """The turn is said: close the mic, commit it and ask for the reply (with the
        service's own VAD, it commits by itself)."""
        self._audio.talking = False
        if self._hands_free:
            self._set_turn(Turn.THINKING)
            return
        if self._send is None:
            self._set_turn(Turn.IDLE)
            return
        self._set_turn(Turn.THINKING)
        self._commit_handle = self.timers.call_later(COMMIT_DELAY_S, self._commit)

    def abandon(self) -> None:
        """The press is not a turn (a long press to forget): nothing is committed."""
        held, self.held = self.held, False
        self._state.update(ptt_held=False)
        if held and not self._hands_free:
            self.abandon_turn()

    def abandon_turn(self) -> None:
        """A hands-free turn heard nothing (a false wake): drop it unsent."""
        self._audio.talking = False
        self._emit_best_effort(client.clear_input())
        if self._state.turn is Turn.LISTENING:
            self._set_turn(Turn.IDLE)

    # -- the commit and its acknowledgement ------------------------------------------------

    def _commit(self) -> None:
        self._commit_handle = None
        if self._send is None:
            self._set_turn(Turn.IDLE)
            return
        commit = client.commit_input()
        self._emit(commit)
        self._commit_id = commit["event_id"]
        self._ack_handle = self.timers.call_later(COMMIT_ACK_S, self._committed)

    def _committed(self) -> None:
        """The commit took (or was never going to be acknowledged): ask for the reply."""
        if self._commit_id is None:
            return
        self._drop_commit()
        self._emit(client.create_response())
        self.replies.asked()
        log_event(log, logging.INFO, "turn", "turn sent; waiting for the reply")

    def _cancel_commit(self) -> None:
        """No commit goes out, and none that went out gets a ``response.create``."""
        if self._commit_handle is not None:
            self._commit_handle.cancel()
            self._commit_handle = None
        self._drop_commit()

    def _drop_commit(self) -> None:
        self._commit_id = None
        if self._ack_handle is not None:
            self._ack_handle.cancel()
            self._ack_handle = None

    # -- sending ---------------------------------------------------------------------------

    def _emit(self, event: dict[str, Any]) -> None:
        if self._send is not None:
            self._send(event)
            self._sent[event["event_id"]] = event["type"]
            while len(self._sent) > SENT_KEPT:
                self._sent.popitem(last=False)

    def _emit_best_effort(self, event: dict[str, Any]) -> None:
        event["event_id"] = self.replies.best_effort_id()
        self._emit(event)
