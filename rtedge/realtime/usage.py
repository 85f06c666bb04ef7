"""Token usage from ``response.done``, counted per direction and modality for the fleet's cost
alerts (``rtedge_realtime_tokens_total``).

Usage is a hint the service may leave out or shape differently (rtAV sends none): only
non-negative integers below a sanity cap are counted, under a fixed set of keys.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

MODALITIES = ("text", "audio", "image")
_CAP = 10_000_000  # far above one response's tokens; a bigger figure is a bad event, not usage


def _count(value: Any) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= _CAP:
        return value
    return None


def count_usage(tokens: Counter[str], usage: Any) -> None:
    """Add ``usage`` (the GA ``response.usage`` object) to ``tokens`` under keys such as
    ``input_audio``; tokens with no per-modality detail go under ``<direction>_unspecified``."""
    if not isinstance(usage, dict):
        return
    for direction in ("input", "output"):
        total = _count(usage.get(f"{direction}_tokens"))
        details = usage.get(f"{direction}_token_details")
        detailed = 0
        if isinstance(details, dict):
            for modality in MODALITIES:
                n = _count(details.get(f"{modality}_tokens"))
                if n:
                    tokens[f"{direction}_{modality}"] += n
                    detailed += n
        if total is not None and total > detailed:
            tokens[f"{direction}_unspecified"] += total - detailed
