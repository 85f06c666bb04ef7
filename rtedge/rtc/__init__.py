"""WebRTC settings and seams shared by the daemon's calls and the local peer: ICE host candidates
and consent (``ice``), the low-latency receive buffer for Opus audio (``jitter``)."""
