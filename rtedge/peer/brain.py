"""What the assistant says: small deterministic rules instead of a model, so replies are about
what was asked and tests can predict them.

Rules, first match wins: an instruction of the form ``Say "..."`` is spoken as given; greetings are
greeted back; the time and the date are told; simple arithmetic is done; anything else is answered
with "You asked: ..." / "You said: ..." quoting the user. "What did I ask before?" is answered
from the earlier user messages (a seeded history included), and a reply to audio in a session
seeded with earlier words says what was asked before, so a test can tell it from a blank one.
Tools: a user text that names a function tool (``get_weather`` or "get weather") calls it, with
arguments taken from the text.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from typing import Any, Final

MAX_QUOTED_WORDS: Final = 16
IDLE_PROMPT: Final = "Are you still there?"  # the reply to a server_vad idle timeout
_NUMBER_WORDS: Final = {
    w: i
    for i, w in enumerate(
        [
            "zero",
            "one",
            "two",
            "three",
            "four",
            "five",
            "six",
            "seven",
            "eight",
            "nine",
            "ten",
            "eleven",
            "twelve",
        ]
    )
}
_OPS: Final = {
    "plus": "+",
    "+": "+",
    "minus": "-",
    "-": "-",
    "times": "*",
    "x": "*",
    "*": "*",
    "multiplied by": "*",
    "divided by": "/",
    "/": "/",
}
_NUM: Final = r"(-?\d+(?:\.\d+)?|" + "|".join(_NUMBER_WORDS) + ")"
_ARITH: Final = re.compile(
    _NUM + r"\s*(" + "|".join(re.escape(k) for k in _OPS) + r")\s*" + _NUM, re.IGNORECASE
)
_SAY: Final = re.compile(r"\bsay\s*:?\s*[\"\u201c']([^\"\u201d']+)[\"\u201d']", re.IGNORECASE)
_QUESTION_START: Final = re.compile(
    r"^(what|who|where|when|why|how|which|is|are|can|could|do|does|will|would)\b", re.IGNORECASE
)


def instructed(instructions: str | None) -> str | None:
    """``Say "hello"`` in response (or session) instructions: the exact words to speak."""
    if not instructions:
        return None
    m = _SAY.search(instructions)
    return m.group(1).strip() if m else None


def reply_to_text(text: str, now: dt.datetime | None = None) -> str:
    now = now or dt.datetime.now()
    clean = " ".join(text.split())
    low = clean.lower().rstrip("?!. ")
    if not low:
        return "I did not catch that."
    if re.fullmatch(r"(hi|hello|hey|good (morning|afternoon|evening))( there)?", low):
        return "Hello! How can I help?"
    if "what time" in low or low == "time":
        return f"It is {now:%H:%M}."
    if "what day" in low or "date" in low.split():
        return f"Today is {now:%A, %B} {now.day}."
    m = _ARITH.search(low)
    if m:
        answer = _arith(m.group(1), m.group(2), m.group(3))
        if answer is not None:
            return f"{m.group(1)} {m.group(2)} {m.group(3)} is {answer}."
    words = clean.split()
    quoted = " ".join(words[:MAX_QUOTED_WORDS]) + (" ..." if len(words) > MAX_QUOTED_WORDS else "")
    quoted = quoted.rstrip("?!.")
    if clean.endswith("?") or _QUESTION_START.match(clean):
        return f"You asked: {quoted}."
    return f"You said: {quoted}."


_RECALL: Final = re.compile(
    r"\bwhat (did|have) i (ask|asked|say|said)\b.*\b(before|earlier|last time|so far)\b",
    re.IGNORECASE,
)


def asks_recall(text: str) -> bool:
    """ "What did I ask before?" and its kin."""
    return bool(_RECALL.search(text))


def recall(earlier: list[str]) -> str:
    """What the user said before, from the history (the most recent last)."""
    if not earlier:
        return "You have not asked me anything before."
    words = " ".join(earlier[-1].split()[:MAX_QUOTED_WORDS])
    return f"Before, you asked: {words}."


def reply_to_audio(seconds: float, earlier: list[str] | None = None) -> str:
    reply = f"I heard {seconds:.1f} seconds of audio."
    return f"{reply} {recall(earlier)}" if earlier else reply


def reply_to_tool_output(name: str, output: str) -> str:
    words = " ".join(output.split()[:MAX_QUOTED_WORDS])
    return f"The {name.replace('_', ' ')} tool returned {words}."


def _arith(a: str, op: str, b: str) -> str | None:
    x, y = _num(a), _num(b)
    sym = _OPS[op.lower()]
    if sym == "/" and y == 0:
        return None
    value = {"+": x + y, "-": x - y, "*": x * y, "/": x / y if y else 0.0}[sym]
    return str(int(value)) if float(value).is_integer() else f"{value:.2f}".rstrip("0")


def _num(s: str) -> float:
    return float(_NUMBER_WORDS.get(s.lower(), s))


def pick_tool(text: str, tools: list[dict[str, Any]], tool_choice: Any) -> dict[str, Any] | None:
    """The function tool the user's text calls for, honouring ``tool_choice``."""
    named = [t for t in tools if isinstance(t.get("name"), str) and t["name"]]
    if not named or tool_choice == "none":
        return None
    if isinstance(tool_choice, dict) and tool_choice.get("type") == "function":
        return next((t for t in named if t["name"] == tool_choice.get("name")), None)
    low = text.lower()
    for tool in named:
        name = tool["name"].lower()
        if name in low or name.replace("_", " ") in low:
            return tool
    return named[0] if tool_choice == "required" else None


def tool_arguments(text: str, tool: dict[str, Any]) -> str:
    """JSON arguments for ``tool`` from the text: ``prop=value`` / ``prop: value`` pairs first;
    then the first required string gets what follows "for"/"in"/"about"; numbers take the first
    number in the text; enums the first value the text mentions."""
    params = tool.get("parameters") or {}
    props = params.get("properties") if isinstance(params, dict) else None
    if not isinstance(props, dict):
        return "{}"
    required = params.get("required") or []
    args: dict[str, Any] = {}
    for prop, schema in props.items():
        m = re.search(
            rf"\b{re.escape(prop)}\s*[=:]\s*(\"[^\"]*\"|[^\s,;]+)", text, flags=re.IGNORECASE
        )
        if m:
            args[prop] = _typed(m.group(1).strip('"'), schema)
    for prop, schema in props.items():
        if prop in args or not isinstance(schema, dict):
            continue
        kind = schema.get("type")
        if isinstance(schema.get("enum"), list) and schema["enum"]:
            low = text.lower()
            args[prop] = next(
                (e for e in schema["enum"] if str(e).lower() in low), schema["enum"][0]
            )
        elif kind in ("number", "integer"):
            n = re.search(r"-?\d+(?:\.\d+)?", text)
            if n:
                args[prop] = _typed(n.group(0), schema)
            elif prop in required:
                args[prop] = 0
        elif kind == "boolean":
            args[prop] = bool(re.search(r"\b(yes|true|on)\b", text, re.IGNORECASE))
        elif kind == "string" and prop in required:
            m = re.search(
                r"\b(?:for|in|about|to)\s+(.+?)(?=\s+(?:in|for|with|using|and)\b|[?.!,]|$)",
                text,
                re.IGNORECASE,
            )
            args[prop] = m.group(1).strip() if m else text.strip()
    return json.dumps(args, separators=(",", ":"))


def _typed(value: str, schema: Any) -> Any:
    kind = schema.get("type") if isinstance(schema, dict) else None
    try:
        if kind == "integer":
            return int(float(value))
        if kind == "number":
            return float(value)
    except ValueError:
        return value
    if kind == "boolean":
        return value.lower() in ("1", "true", "yes", "on")
    return value
