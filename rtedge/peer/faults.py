"""Fault injection for tests and benchmarks: what ``POST /_rtedge/faults`` accepts.

Two kinds: HTTP faults wait in a queue and answer the next requests to an endpoint (an error status,
or a slow answer); call faults act at once on active calls (see ``rtedge.peer.call``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Final, Literal

from rtedge.peer.loose import ENDINGS, REFUSAL_CODES, Loosening, check_path

CALL_FAULTS: Final = frozenset(
    {
        "close_datachannel",
        "stop_rtp",
        "resume_rtp",
        "drop_connection",
        "malformed_event",
        "unknown_event",
        "oversized_event",
        "event_storm",
        "session_expired",
        "deep_json_event",
        "huge_event",
        "bomb_image_event",
        "loosen",
        "end_next_response",
        "refuse_next",
    }
)
ENDPOINTS: Final = frozenset({"calls", "client_secrets", "live_sessions"})
#: Default total size of the ``oversized_event`` message: just under 64 KiB, the RFC 8841 default
#: max-message-size that any WebRTC client accepts (aiortc and Chrome advertise 256 KiB).
OVERSIZED_DEFAULT_BYTES: Final = 65_000
MAX_STORM_EVENTS: Final = 100_000


class FaultSpecError(ValueError):
    """A fault request that makes no sense; reported as 400 with ``param``."""

    def __init__(self, message: str, param: str) -> None:
        super().__init__(message)
        self.param = param


@dataclass(slots=True)
class HttpFault:
    """Answer the next ``remaining`` requests to ``endpoint`` with ``http_status`` (and
    ``Retry-After``), or delay a normal answer by ``slow_answer_s``."""

    endpoint: Literal["calls", "client_secrets", "live_sessions"]
    remaining: int
    http_status: int | None = None
    retry_after: float | None = None
    slow_answer_s: float | None = None

    def describe(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}


@dataclass(frozen=True, slots=True)
class CallFault:
    kind: str
    call_id: str | None = None
    rate: float = 1000.0
    seconds: float = 1.0
    size: int = OVERSIZED_DEFAULT_BYTES
    loosening: Loosening | None = None  # ``loosen``
    status: str | None = None  # ``end_next_response``
    refuse: dict[str, str] = field(default_factory=dict)  # ``refuse_next``: type -> code


class FaultBook:
    """Pending HTTP faults, consumed in order."""

    def __init__(self) -> None:
        self._http: list[HttpFault] = []

    def add(self, fault: HttpFault) -> None:
        self._http.append(fault)

    def take(self, endpoint: str) -> HttpFault | None:
        """The fault for this request, if any (its count goes down by one)."""
        for fault in self._http:
            if fault.endpoint == endpoint:
                fault.remaining -= 1
                if fault.remaining <= 0:
                    self._http.remove(fault)
                return fault
        return None

    def clear(self) -> int:
        n = len(self._http)
        self._http.clear()
        return n

    def pending(self) -> list[dict[str, Any]]:
        return [f.describe() for f in self._http]


def parse(spec: Any) -> HttpFault | CallFault:
    """Validate one fault object from the admin route."""
    if not isinstance(spec, dict):
        raise FaultSpecError("A fault is a JSON object.", "")
    if "call" in spec:
        return _parse_call(spec)
    known = {"http_status", "retry_after", "slow_answer_s", "count", "endpoint"}
    for key in spec:
        if key not in known:
            raise FaultSpecError(f"Unknown fault field: {key!r}.", key)
    status = spec.get("http_status")
    slow = spec.get("slow_answer_s")
    if (status is None) == (slow is None):
        raise FaultSpecError("Give exactly one of 'http_status', 'slow_answer_s' or 'call'.", "")
    if status is not None and (not isinstance(status, int) or not 400 <= status <= 599):
        raise FaultSpecError("'http_status' must be an integer 400-599.", "http_status")
    if slow is not None and (not _number(slow) or not 0 <= slow <= 600):
        raise FaultSpecError("'slow_answer_s' must be a number 0-600.", "slow_answer_s")
    retry_after = spec.get("retry_after")
    if retry_after is not None and (not _number(retry_after) or retry_after < 0):
        raise FaultSpecError("'retry_after' must be a non-negative number.", "retry_after")
    count = spec.get("count", 1)
    if not isinstance(count, int) or isinstance(count, bool) or not 1 <= count <= 10_000:
        raise FaultSpecError("'count' must be an integer 1-10000.", "count")
    endpoint = spec.get("endpoint", "calls")
    if endpoint not in ENDPOINTS:
        raise FaultSpecError(
            "'endpoint' must be 'calls', 'client_secrets' or 'live_sessions'.", "endpoint"
        )
    return HttpFault(endpoint, count, status, retry_after, slow)


def _parse_call(spec: dict[str, Any]) -> CallFault:
    kind = spec["call"]
    if kind not in CALL_FAULTS:
        raise FaultSpecError(
            f"Unknown call fault; one of: {', '.join(sorted(CALL_FAULTS))}.", "call"
        )
    known = {"call", "call_id", "rate", "seconds", "bytes", *_LOOSE_KEYS.get(kind, ())}
    for key in spec:
        if key not in known:
            raise FaultSpecError(f"Unknown fault field: {key!r}.", key)
    call_id = spec.get("call_id")
    if call_id is not None and not isinstance(call_id, str):
        raise FaultSpecError("'call_id' must be a string.", "call_id")
    rate = spec.get("rate", 1000)
    seconds = spec.get("seconds", 1)
    if not _number(rate) or not 0 < rate <= 20_000:
        raise FaultSpecError("'rate' must be a number of events per second, 0-20000.", "rate")
    if not _number(seconds) or not 0 < seconds <= 60 or rate * seconds > MAX_STORM_EVENTS:
        raise FaultSpecError("'seconds' must be 0-60 (and rate*seconds <= 100000).", "seconds")
    # A huge event is the point of ``huge_event`` (rtedge.peer.hostile): up to 64 MiB there.
    top = 64 << 20 if kind == "huge_event" else 1 << 20
    size = spec.get("bytes", 26_700_000 if kind == "huge_event" else OVERSIZED_DEFAULT_BYTES)
    if not isinstance(size, int) or not 1024 <= size <= top:
        raise FaultSpecError(f"'bytes' must be an integer 1024-{top}.", "bytes")
    fault = CallFault(kind, call_id, float(rate), float(seconds), size)
    if kind == "loosen":
        return _parse_loosen(spec, fault)
    if kind == "end_next_response":
        status = spec.get("status")
        if status not in ENDINGS:
            raise FaultSpecError(
                f"'status' must be one of: {', '.join(sorted(ENDINGS))}.", "status"
            )
        return CallFault(kind, call_id, status=status)
    if kind == "refuse_next":
        event = spec.get("event")
        if event not in REFUSAL_CODES:
            raise FaultSpecError(
                f"'event' must be one of: {', '.join(sorted(REFUSAL_CODES))}.", "event"
            )
        code = spec.get("code", REFUSAL_CODES[event])
        if not isinstance(code, str) or not code:
            raise FaultSpecError("'code' must be a string.", "code")
        return CallFault(kind, call_id, refuse={event: code})
    return fault


_LOOSE_KEYS: Final = {
    "loosen": ("drop", "set", "rename"),
    "end_next_response": ("status",),
    "refuse_next": ("event", "code"),
}


def _parse_loosen(spec: dict[str, Any], fault: CallFault) -> CallFault:
    drop = spec.get("drop", [])
    changes = spec.get("set", {})
    rename = spec.get("rename", {})
    if not isinstance(drop, list) or not all(check_path(k) for k in drop):
        raise FaultSpecError("'drop' must be a list of '<type>:<dotted.path>'.", "drop")
    if not isinstance(changes, dict) or not all(check_path(k) for k in changes):
        raise FaultSpecError("'set' must map '<type>:<dotted.path>' to values.", "set")
    if not isinstance(rename, dict) or not all(
        isinstance(k, str) and isinstance(v, str) and v for k, v in rename.items()
    ):
        raise FaultSpecError("'rename' must map event types to the names to send.", "rename")
    loosening = Loosening(list(drop), dict(changes), dict(rename))
    return CallFault(fault.kind, fault.call_id, loosening=loosening)


def _number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)
