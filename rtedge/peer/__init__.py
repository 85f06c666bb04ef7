"""rtedge's local Realtime peer: an OpenAI-Realtime-compatible WebRTC service (GA shape) with
rtAV's avatar-frame extension, for trying rtedge with no key and no network and for tests.

``create_app(PeerConfig(...))`` gives the aiohttp application; ``rtedge.peer.cli`` runs it.
"""

from typing import Any

from rtedge.peer.config import PeerConfig

__all__ = ["PeerConfig", "create_app"]


def __getattr__(name: str) -> Any:
    # The server (aiortc, PyAV, the voice) loads only when used: ``rtedge run`` and ``rtedge
    # check`` build the argument parser, which imports ``rtedge.peer.cli``, and must not pay
    # for it.
    if name == "create_app":
        from rtedge.peer.server import create_app

        return create_app
    raise AttributeError(name)
