"""rtedge's local Realtime peer: an OpenAI-Realtime-compatible WebRTC service (GA shape) with
rtAV's avatar-frame extension, for trying rtedge with no key and no network and for tests.

``create_app(PeerConfig(...))`` gives the aiohttp application; ``rtedge.peer.cli`` runs it.
"""

from rtedge.peer.config import PeerConfig
from rtedge.peer.server import create_app

__all__ = ["PeerConfig", "create_app"]
