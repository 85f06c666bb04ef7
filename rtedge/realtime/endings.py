"""How a reply ended, for the log and the counters: early endings with their reason, and the
service error codes counted under their own name."""

from __future__ import annotations

import logging

from rtedge.logs import event as log_event
from rtedge.protocol import server as ev

log = logging.getLogger("rtedge.realtime.conversation")


def log_early_end(rid: str | None, status: str | None, details: ev.StatusDetails | None) -> None:
    reason = None
    if details is not None:
        reason = details.reason
        if details.error is not None:
            reason = f"{details.error.code or details.error.type}: {details.error.message or ''}"
    log_event(
        log,
        logging.WARNING if status == "failed" else logging.INFO,
        "response_ended",
        "reply %s ended %s (%s)",
        rid,
        status,
        (reason or "no reason given")[:200],
        status=status,
        reason=reason,
    )


#: Error codes counted under their own name in ``events_bad`` (others as ``error:other``).
KNOWN_ERRORS = frozenset(
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
