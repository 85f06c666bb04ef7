"""Avatar display: service frames (rtAV JPEG events, RTP video) or a local lip-synced avatar, paced
to the audio playback clock and shown on the Linux framebuffer or an MJPEG page.

Nothing is imported here: a module that needs one small part (``rtedge.display.palette``) must
not load the whole pipeline, which the daemon builds only for a display (``rtedge.app``)."""

from __future__ import annotations
