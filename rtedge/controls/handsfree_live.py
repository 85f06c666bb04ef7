"""Hands-free turns on GPT-Live: the wake gate's turns mapped onto Live's input mute.

Live has no buffer to commit and no response to cancel: the call stays up with the input
muted at the service while the device waits for the wake word (and the capture gate sends
digital silence meanwhile, so nothing with sound leaves the device either way). The wake word
unmutes, and the cleaned microphone streams; the local voice detector's silence ends the turn
(mute; the model answers when it has heard the user); a wake word said over a reply cuts it as
a press does on Live (local flush, the service's audio held until the turn ends and the stream
is quiet, and the model yields when it hears the user)."""

from __future__ import annotations

from collections.abc import Callable

from rtedge.live.conversation import LiveConversation


class LiveTurns:
    """What ``rtedge.controls.handsfree.HandsFree`` asks of a conversation, on Live."""

    def __init__(self, conversation: LiveConversation) -> None:
        self.conversation = conversation
        self._button = False
        #: Set by the hands-free controller: the model answered while the turn was open.
        self.on_answer: Callable[[], None] | None = None
        conversation.on_answer_in_turn = self._answered

    def _answered(self) -> None:
        # Live's model takes its turn by its own VAD: once it answers, the user's turn is
        # over, and a microphone left open would send the answer's residual echo back to it
        if self.on_answer is not None:
            self.on_answer()

    @property
    def held(self) -> bool:
        """The button is held (it owns the microphone); a hands-free turn is not a hold."""
        return self._button

    @property
    def playing(self) -> bool:
        return self.conversation.playing

    @property
    def response_id(self) -> str | None:
        return None  # Live has no responses to cancel: barge-in is ``playing`` alone

    def begin_turn(self, *, open_mic: bool = True) -> None:
        # the capture gate already opened the microphone in the period the wake word fired
        self.conversation.press(button=False)

    def end_turn(self) -> None:
        self.conversation.release(button=False)

    def abandon_turn(self) -> None:
        """A false wake: muted again, and the device goes back to idle, not thinking."""
        self.conversation.release(button=False, heard=False)

    def press(self) -> None:
        if self.conversation.held:
            # the button over an open hands-free turn: the turn becomes the button's
            self.conversation.release(button=False, heard=False)
        self._button = True
        self.conversation.press()

    def release(self) -> None:
        self._button = False
        self.conversation.release()


__all__ = ["LiveTurns"]
