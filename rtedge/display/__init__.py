"""Avatar display: service frames (rtAV JPEG events, RTP video) or a local lip-synced avatar, paced
to the audio playback clock and shown on the Linux framebuffer or an MJPEG page."""

from __future__ import annotations

from rtedge.display.pipeline import DisplayPipeline, ShownFrame

__all__ = ["DisplayPipeline", "ShownFrame"]
