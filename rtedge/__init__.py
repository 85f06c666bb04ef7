"""rtedge: headless edge appliance daemon for OpenAI-Realtime-compatible WebRTC services."""

__version__ = "0.1.0"
