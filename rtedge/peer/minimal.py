"""The peer's ``minimal`` profile: an independent server that speaks OpenAI's Realtime API over
WebRTC with less, as such servers do (issue 13). What it changes, all in one place:

- events: no ``output_audio_buffer.*``; items announced with the older
  ``conversation.item.created`` (no ``conversation.item.added`` / ``.done``);
- turns: its own VAD runs whatever ``turn_detection`` says (``null`` included); when the user
  stops speaking it commits and starts a response, and if one is already active it starts its
  own right after that one (the stale "reply to nothing" a client must not play);
- ``input_audio_buffer.clear`` is refused with an error;
- ``response.cancel`` naming a response cuts only that response's audio;
- HTTP (``rtedge.peer.server``): raw SDP only (no ``client_secrets``, no multipart), any key or
  none when no keys are configured, hangup by ``DELETE`` on the call's ``Location``;
- RTP flows only while a reply plays (silence between replies is not sent).
"""

from __future__ import annotations

from typing import Any, Final

from rtedge.peer import sessionconf

JsonDict = dict[str, Any]

#: The VAD such a server runs when told ``turn_detection: null``.
OWN_VAD: Final[JsonDict] = dict(sessionconf.SERVER_VAD_DEFAULTS)

_DROPPED: Final = frozenset(
    {
        "output_audio_buffer.started",
        "output_audio_buffer.stopped",
        "output_audio_buffer.cleared",
        "conversation.item.done",
    }
)
_RENAMED: Final = {"conversation.item.added": "conversation.item.created"}


def reshape(event: JsonDict) -> JsonDict | None:
    """The event as the minimal server sends it, or None when it sends no such event."""
    etype = event.get("type")
    if etype in _DROPPED:
        return None
    renamed = _RENAMED.get(str(etype))
    if renamed is not None:
        event = {**event, "type": renamed}
    return event


def turn_detection(effective: JsonDict) -> JsonDict:
    """The VAD actually run: the session's if it has one, else the server's own."""
    return sessionconf.turn_detection(effective) or dict(OWN_VAD)


__all__ = ["OWN_VAD", "reshape", "turn_detection"]
