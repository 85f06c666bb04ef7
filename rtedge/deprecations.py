"""Shutdown dates of Realtime models, as published on OpenAI's deprecations page.

The daemon exports the configured model's date as ``rtedge_model_shutdown_timestamp_seconds`` so
a fleet alert fires weeks before the service starts refusing the model. A model missing here has
no announced date (or is not OpenAI's): nothing is exported and nothing fires.
"""

from __future__ import annotations

import datetime as dt

# From https://platform.openai.com/docs/deprecations (2026 announcements).
SHUTDOWN_DATES: dict[str, dt.date] = {
    "gpt-4o-realtime-preview": dt.date(2026, 5, 7),
    "gpt-4o-realtime-preview-2024-12-17": dt.date(2026, 5, 7),
    "gpt-4o-realtime-preview-2025-06-03": dt.date(2026, 5, 7),
    "gpt-4o-mini-realtime-preview": dt.date(2026, 5, 7),
    "gpt-4o-mini-realtime-preview-2024-12-17": dt.date(2026, 7, 23),
    "gpt-realtime-mini-2025-10-06": dt.date(2026, 7, 23),
}


def shutdown_timestamp(model: str) -> float | None:
    """Unix time (UTC midnight) at which ``model`` stops being served, when announced."""
    day = SHUTDOWN_DATES.get(model)
    if day is None:
        return None
    return dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC).timestamp()
