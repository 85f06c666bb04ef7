"""JSON on the data channel, bounded: what one message may cost before anything looks at it.

A service (or anything that can reach the channel) chooses the size and the shape of what it
sends; the decoder does not let that choice become memory, recursion or a crash. Every refusal is
an EventError with a short ``kind`` that ends up as a metric label.
"""

from __future__ import annotations

import json
from typing import Any, Final

#: A message larger than this is not even parsed.
MAX_EVENT_BYTES: Final = 1 << 20
#: Deepest nesting of objects/arrays accepted. GA events nest about 7 deep (a response's output
#: item's content part's ...); 32 leaves room for tool arguments and provider extensions.
MAX_DEPTH: Final = 32


class EventError(Exception):
    """An event that could not be used; ``kind`` is a short metric label, ``detail`` says why."""

    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(f"{kind}: {detail}")
        self.kind = kind
        self.detail = detail


def byte_length(data: str | bytes) -> int:
    if isinstance(data, bytes):
        return len(data)
    # A str of n characters is n to 4n bytes in UTF-8: encode only when it could be over.
    if len(data) * 4 <= MAX_EVENT_BYTES:
        return len(data)
    return len(data.encode("utf-8", "surrogatepass"))


def load_object(data: str | bytes) -> dict[str, Any]:
    """One JSON object from one message, or EventError (``too_large``, ``invalid_json``,
    ``too_deep``, ``not_an_object``). Never raises anything else."""
    size = byte_length(data)
    if size > MAX_EVENT_BYTES:
        raise EventError("too_large", f"{size} bytes (limit {MAX_EVENT_BYTES})")
    try:
        raw = json.loads(data)
    except RecursionError:
        raise EventError("too_deep", f"nesting beyond the parser's limit ({size} bytes)") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise EventError("invalid_json", str(exc)[:200]) from None
    if not isinstance(raw, dict):
        raise EventError("not_an_object", type(raw).__name__)
    depth = nesting(raw)
    if depth > MAX_DEPTH:
        raise EventError("too_deep", f"nested {depth} levels (limit {MAX_DEPTH})")
    return raw


def nesting(value: dict[str, Any] | list[Any]) -> int:
    """Depth of containers in a parsed JSON value, without recursion; stops one past the limit
    (the cost is bounded by the number of containers, not by the bytes of the strings)."""
    deepest = 1
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > deepest:
            deepest = depth
            if deepest > MAX_DEPTH:
                return deepest
        children = node.values() if isinstance(node, dict) else node
        for child in children:
            if isinstance(child, dict | list):
                stack.append((child, depth + 1))
    return deepest


def encode(event: dict[str, Any]) -> str:
    return json.dumps(event, separators=(",", ":"), ensure_ascii=False)
