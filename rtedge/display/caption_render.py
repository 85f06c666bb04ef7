"""Draws the caption band (state indicator and both sides' words) as an RGB picture with Pillow
and a TrueType font; runs on the display thread."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Literal

import numpy as np
from PIL import Image, ImageDraw, ImageFont, features

from rtedge.display import palette
from rtedge.display.captions import CaptionView
from rtedge.media.jpeg import Pixels

log = logging.getLogger(__name__)

Direction = Literal["ltr", "rtl"]
Font = ImageFont.FreeTypeFont | ImageFont.ImageFont
#: More characters than any line holds at a legible size.
_MAX_LINE_CHARS = 200


def load_font(path: Path, size: int) -> Font:
    """The configured font; Pillow's built-in one (with a warning) when it cannot be read, so a
    missing font package costs legibility, never the display."""
    try:
        return ImageFont.truetype(str(path), size)
    except OSError as exc:
        log.warning("caption font %s unavailable (%s): using Pillow's default", path, exc)
        return ImageFont.load_default(size)


class CaptionRenderer:
    """A band ``width`` pixels wide: one indicator row, then ``lines`` lines of words (the
    newest; the user's in blue, the assistant's in white), on a dark background."""

    def __init__(
        self,
        width: int,
        *,
        font_path: Path,
        font_size: int,
        lines: int,
        direction: Direction = "ltr",
    ) -> None:
        self.width = width
        self.lines = lines
        self.direction: Direction = direction
        self.font = load_font(font_path, font_size)
        self.small = load_font(font_path, max(8, round(font_size * 0.6)))
        self.pad = max(4, font_size // 3)
        self.line_h = round(font_size * 1.25)
        self.small_h = round(font_size * 0.6 * 1.3)
        self.height = 2 * self.pad + self.small_h + lines * self.line_h
        # Right-to-left shaping needs libraqm (Pillow's wheels bundle it; FriBiDi comes from
        # Debian's libfribidi0). Without it RTL text would come out in the wrong order.
        if direction == "rtl" and not features.check("raqm"):
            log.warning("captions: right-to-left text needs libraqm/libfribidi; drawing as is")

    def _kw(self, font: Font) -> dict[str, str]:
        raqm = getattr(font, "layout_engine", None) == ImageFont.Layout.RAQM
        return {"direction": self.direction} if raqm else {}

    def _length(self, text: str, font: Font) -> float:
        return float(font.getlength(text, **self._kw(font)))  # type: ignore[arg-type]

    def wrap(self, text: str, font: Font | None = None) -> list[str]:
        """Greedy word wrap to the band's inner width; a word wider than a line is cut."""
        font = font or self.font
        inner = self.width - 2 * self.pad
        out: list[str] = []
        line = ""
        for word in text.split():
            candidate = f"{line} {word}" if line else word
            if self._length(candidate, font) <= inner:
                line = candidate
                continue
            if line:
                out.append(line)
            while self._length(word, font) > inner and len(word) > 1:
                cut = len(word) - 1
                while cut > 1 and self._length(word[:cut], font) > inner:
                    cut -= 1
                out.append(word[:cut])
                word = word[cut:]
            line = word
        if line:
            out.append(line)
        return out

    def layout(self, view: CaptionView) -> list[tuple[str, str]]:
        """The caption lines shown for ``view`` (text, colour), oldest first."""
        # Only the end can show: wrapping a writer's unbounded text would cost the display thread.
        tail = self.lines * _MAX_LINE_CHARS
        rows = [(t, palette.USER_TEXT) for t in self.wrap(view.user[-tail:])]
        rows += [(t, palette.ASSISTANT_TEXT) for t in self.wrap(view.assistant[-tail:])]
        return rows[-self.lines :]

    def render(self, view: CaptionView) -> Pixels:
        """The band as H x W x 3 uint8 RGB."""
        img = Image.new("RGB", (self.width, self.height), palette.rgb(palette.BACKGROUND))
        draw = ImageDraw.Draw(img)
        rtl = self.direction == "rtl"
        colour = palette.rgb(palette.INDICATOR[view.indicator.name])
        dot = round(self.small_h * 0.55)
        top = self.pad + (self.small_h - dot) // 2
        x_dot = self.width - self.pad - dot if rtl else self.pad
        draw.ellipse((x_dot, top, x_dot + dot, top + dot), fill=colour)
        label = view.indicator.label
        if rtl:
            x = self.width - self.pad - dot - self.pad // 2 - self._length(label, self.small)
        else:
            x = self.pad + dot + self.pad // 2
        draw.text((x, self.pad), label, font=self.small, fill=colour, **self._kw(self.small))  # type: ignore[arg-type]
        y = self.pad + self.small_h
        for text, fill in self.layout(view):
            x = self.width - self.pad - self._length(text, self.font) if rtl else self.pad
            draw.text((x, y), text, font=self.font, fill=palette.rgb(fill), **self._kw(self.font))  # type: ignore[arg-type]
            y += self.line_h
        return np.asarray(img, dtype=np.uint8)


__all__ = ["CaptionRenderer", "load_font"]
