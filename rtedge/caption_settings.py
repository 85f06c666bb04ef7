"""The ``[display]`` keys of the kiosk screen: captions on the framebuffer and the /kiosk page."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

DEJAVU_SANS = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")


class CaptionSettings(BaseModel):
    """Mixed into ``DisplaySettings`` (which forbids unknown keys)."""

    model_config = ConfigDict(use_attribute_docstrings=True)

    captions: bool = False
    """Show both sides' words and the state indicator in a band at the bottom of the
    framebuffer (``backend = "fbdev"``)."""
    caption_lines: int = Field(default=2, ge=1, le=8)
    """Lines of caption text in the band (the newest words; older lines scroll away)."""
    caption_font_size: int = Field(default=32, ge=8, le=200)
    """Caption text height in pixels (the indicator is drawn at about 60 % of it)."""
    caption_direction: Literal["ltr", "rtl"] = "ltr"
    """Language direction: ``rtl`` lays out Arabic or Hebrew right to left, aligned right."""
    caption_clear_s: float = Field(default=8.0, gt=0, le=3600)
    """Captions are cleared after this many seconds with nobody talking."""
    caption_pace_cps: float = Field(default=12.0, gt=0, le=100)
    """The assistant's caption advances at most this many letters per second of voice actually
    played (digits count three), so words are not shown before they are heard."""
    caption_font: Path = DEJAVU_SANS
    """TrueType font for captions (Debian's ``fonts-dejavu-core``)."""
    kiosk_page: bool = False
    """Serve ``GET /kiosk`` on the health server: avatar, live captions, state and a
    touch-to-talk button for a kiosk browser."""
