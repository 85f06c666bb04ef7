"""The hands-free turn as a state machine on audio time: when the wake word (or speech in a
follow-up window) opens the microphone, and when silence, no speech or the length cap
closes it. Pure logic fed one capture period at a time, so it is tested without a clock."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from rtedge.settings_handsfree import WakeSettings


class GateEvent(StrEnum):
    WAKE = "wake"  # the wake word opened a turn
    SPEECH = "speech"  # speech without the wake word opened one (follow-up, or barge-in)
    END = "end"  # the turn is over: send it (commit)
    FALSE_WAKE = "false_wake"  # the turn heard no speech: drop it
    CAPPED = "capped"  # the turn reached max_turn_s: send what there is


#: Voiced periods in a row that count as speech starting (a click or a knock is shorter).
ONSET_PERIODS = 3


@dataclass
class GateConfig:
    period_s: float
    end_silence_s: float
    no_speech_s: float
    max_turn_s: float
    barge_in_speech: bool

    @classmethod
    def from_settings(cls, wake: WakeSettings, period_s: float) -> GateConfig:
        return cls(
            period_s=period_s,
            end_silence_s=wake.end_silence_ms / 1000,
            no_speech_s=wake.no_speech_s,
            max_turn_s=wake.max_turn_s,
            barge_in_speech=wake.barge_in_speech,
        )


class WakeGate:
    """``step(wake, voice)`` once per capture period; ``open`` says whether the microphone
    may leave the device. The loop's wishes (a follow-up window, the assistant talking, the
    button held) arrive as plain attributes written from the event loop and read here."""

    def __init__(self, config: GateConfig) -> None:
        self.config = config
        self.open = False
        self.opened_by: GateEvent | None = None
        self._elapsed = 0.0  # audio time since the turn opened
        self._heard = False  # speech heard in this turn
        self._silence = 0.0  # audio time since speech was last heard
        self._voiced_run = 0
        self._follow_up_left = 0.0
        # written by the event loop
        self.follow_up_request: float | None = None
        self.assistant_speaking = False
        self.answering = False  # the reply playing answers a hands-free turn
        self.suspended = False  # the button is held: push-to-talk owns the microphone
        self.close_request = False
        self.end_request = False  # the service answered: end the open turn now (GPT-Live)

    @property
    def follow_up_left(self) -> float:
        return self._follow_up_left

    def step(self, wake: bool, voice: bool) -> GateEvent | None:
        period = self.config.period_s
        request = self.follow_up_request
        if request is not None:
            self.follow_up_request = None
            self._follow_up_left = request
        self._voiced_run = self._voiced_run + 1 if voice else 0
        if self.end_request:
            self.end_request = False
            if self.open and not self.suspended:
                self._close()
                return GateEvent.END
        if self.close_request or self.suspended:
            self.close_request = False
            self._close()
            self._follow_up_left = 0.0
            return None
        if self.open:
            return self._step_open(voice, period)
        onset = self._voiced_run >= ONSET_PERIODS
        event: GateEvent | None = None
        if wake:
            event = GateEvent.WAKE
        elif (
            onset
            and self._follow_up_left > 0
            and not self.assistant_speaking
            or (
                onset and self.assistant_speaking and self.answering and self.config.barge_in_speech
            )
        ):
            event = GateEvent.SPEECH
        self._follow_up_left = max(0.0, self._follow_up_left - period)
        if event is not None:
            self._begin(event, heard=event is GateEvent.SPEECH)
        return event

    def _begin(self, event: GateEvent, heard: bool) -> None:
        self.open = True
        self.opened_by = event
        self._elapsed = 0.0
        self._heard = heard
        self._silence = 0.0
        self._follow_up_left = 0.0
        self._voiced_run = 0

    def _step_open(self, voice: bool, period: float) -> GateEvent | None:
        cfg = self.config
        self._elapsed += period
        if voice:
            # speech counts from an onset: the wake word's own tail is a period or two
            if self._voiced_run >= ONSET_PERIODS:
                self._heard = True
            self._silence = 0.0
        else:
            self._silence += period
        end: GateEvent | None = None
        if self._elapsed >= cfg.max_turn_s - 1e-9:
            end = GateEvent.CAPPED
        elif self._heard and self._silence >= cfg.end_silence_s - 1e-9:
            end = GateEvent.END
        elif not self._heard and self._elapsed >= cfg.no_speech_s - 1e-9:
            end = GateEvent.FALSE_WAKE
        if end is not None:
            self._close()
        return end

    def _close(self) -> None:
        self.open = False
        self.opened_by = None
        self._voiced_run = 0


__all__ = ["ONSET_PERIODS", "GateConfig", "GateEvent", "WakeGate"]
