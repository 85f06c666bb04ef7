"""The kiosk screen's colours, shared by the framebuffer captions and the /kiosk page (one
place, so both pass the same WCAG AA contrast test)."""

from __future__ import annotations

from typing import Final

BACKGROUND: Final = "#101418"
USER_TEXT: Final = "#a8d8ff"
ASSISTANT_TEXT: Final = "#ffffff"
MUTED_TEXT: Final = "#c2c8d0"
INDICATOR: Final[dict[str, str]] = {
    "idle": "#c2c8d0",
    "listening": "#5ee08a",
    "thinking": "#ffc94d",
    "speaking": "#7cc4ff",
    "offline": "#ff8a8a",
}
BUTTON_BG: Final = "#1f6feb"
BUTTON_TEXT: Final = "#ffffff"
BUTTON_ACTIVE_BG: Final = "#b42318"


def rgb(hex_colour: str) -> tuple[int, int, int]:
    h = hex_colour.lstrip("#")
    return int(h[0:2], 16), int(h[2:4], 16), int(h[4:6], 16)


def relative_luminance(hex_colour: str) -> float:
    """WCAG 2.x relative luminance of an sRGB colour."""

    def channel(v: int) -> float:
        c = v / 255
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (channel(v) for v in rgb(hex_colour))
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast_ratio(a: str, b: str) -> float:
    """WCAG contrast ratio (1..21); AA asks 4.5 for body text."""
    la, lb = sorted((relative_luminance(a), relative_luminance(b)), reverse=True)
    return (la + 0.05) / (lb + 0.05)


__all__ = ["BACKGROUND", "INDICATOR", "contrast_ratio", "relative_luminance", "rgb"]
