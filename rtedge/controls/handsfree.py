"""Hands-free turns: what the capture thread's gate events do to the conversation.

Hands-free turns on the event loop: what the capture thread's gate events do to the
conversation (start a turn, send it, drop a false wake, barge in), the follow-up window after
a reply, the button beside it, and the front end's figures for ``/status`` and ``/metrics``."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

from rtedge.audio.frontend import Frontend
from rtedge.audio.handsfree_gate import GateEvent, WakeGate
from rtedge.audio.pipeline import AudioPipeline
from rtedge.logs import event as log_event
from rtedge.realtime.conversation import Conversation
from rtedge.settings_handsfree import WakeSettings
from rtedge.state import State, Turn

log = logging.getLogger(__name__)

STATUS_INTERVAL_S = 1.0


class HandsFree:
    def __init__(
        self,
        settings: WakeSettings,
        audio: AudioPipeline,
        conversation: Conversation,
        state: State,
        *,
        service_vad: bool = False,
    ) -> None:
        assert audio.frontend is not None and audio.frontend.gate is not None
        self.settings = settings
        self.audio = audio
        self.frontend: Frontend = audio.frontend
        self.gate: WakeGate = audio.frontend.gate
        self.conversation = conversation
        self.state = state
        self.service_vad = service_vad
        self.in_turn = False  # a hands-free turn is open
        self.answering = False  # a reply to a hands-free turn is on its way or playing
        self.barge_ins = 0
        self.last_barge_in: float | None = None  # monotonic, for tests and the log
        self._task: asyncio.Task[None] | None = None
        audio.on_gate_event = self.on_gate_event
        state.subscribe(self._on_state)

    # ---- gate events (from the capture thread, on the loop) ---------------------------------

    def on_gate_event(self, event: GateEvent) -> None:
        conv = self.conversation
        if conv.held:
            return  # the button owns the microphone (the gate is suspended meanwhile)
        if event in (GateEvent.WAKE, GateEvent.SPEECH):
            barge = conv.playing or conv.response_id is not None
            if self.settings.earcon:
                self.audio.earcon("press")
            conv.begin_turn(open_mic=False)  # the capture thread opened its gate already
            self.in_turn = True
            self.answering = False
            if barge:
                self.barge_ins += 1
                self.last_barge_in = time.monotonic()
            log_event(
                log,
                logging.INFO,
                "wake",
                "hands-free turn opened by %s%s",
                "the wake word" if event is GateEvent.WAKE else "speech",
                " (barge-in)" if barge else "",
                source=event.value,
                barge_in=barge,
            )
        elif event in (GateEvent.END, GateEvent.CAPPED):
            self.in_turn = False
            self.answering = True
            if self.settings.earcon:
                self.audio.earcon("release")
            conv.end_turn()
        elif event is GateEvent.FALSE_WAKE:
            self.in_turn = False
            log_event(log, logging.INFO, "false_wake", "wake word with no speech after it")
            conv.abandon_turn()
        self._publish()

    def _on_state(self, state: State) -> None:
        gate = self.gate
        gate.assistant_speaking = state.turn is Turn.SPEAKING
        gate.answering = self.answering
        if self.answering and state.turn is Turn.IDLE and not self.in_turn:
            # the reply has been heard: the user may answer without the wake word
            self.answering = False
            gate.answering = False
            if self.settings.follow_up_s > 0:
                gate.follow_up_request = self.settings.follow_up_s

    # ---- the button beside it ---------------------------------------------------------------

    def press(self) -> None:
        self.gate.suspended = True  # push-to-talk owns the microphone while held
        self.in_turn = False
        self.answering = False
        self.conversation.press()
        if self.service_vad:
            self.conversation.begin_turn()  # the service's VAD would otherwise hear nothing

    def release(self) -> None:
        held = self.conversation.held
        self.conversation.release()
        self.gate.suspended = False
        if self.service_vad and held:
            self.conversation.end_turn()

    # ---- figures ----------------------------------------------------------------------------

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._publish_every(), name="hands-free-status")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _publish_every(self) -> None:
        while True:
            await asyncio.sleep(STATUS_INTERVAL_S)
            self._publish()

    def snapshot(self) -> dict[str, Any]:
        data = self.frontend.snapshot()
        data["voice_barge_ins"] = self.barge_ins
        data["follow_up_s_left"] = round(self.gate.follow_up_left, 2)
        return data

    def _publish(self) -> None:
        self.state.update(hands_free=self.snapshot())


__all__ = ["HandsFree"]
