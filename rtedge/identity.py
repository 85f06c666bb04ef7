"""What tells one device's metrics apart from another's in a fleet (``rtedge_info``)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Identity:
    """What tells this device's series apart in a fleet (``rtedge_info``)."""

    version: str
    device_id: str
    provider: str
    model: str
    model_shutdown: float | None = None  # unix time the service stops serving ``model``
