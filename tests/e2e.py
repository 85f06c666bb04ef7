"""Shared steps of the daemon-against-peer end-to-end tests (``rtedge run`` and ``rtedge peer``
as real processes): start both for a service profile, and read what the conversation kept."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tests.support import Daemon, Peer, daemon_config, peer_args

PeerFactory = Callable[..., Peer]
DaemonFactory = Callable[..., Daemon]


def service(
    profile: str,
    peer_factory: PeerFactory,
    daemon_factory: DaemonFactory,
    config: dict[str, dict[str, Any]] | None = None,
) -> tuple[Peer, Daemon]:
    """The peer as a service of ``profile`` and the daemon connected to it, healthy."""
    peer = peer_factory(*peer_args(profile))
    return peer, daemon_factory(peer.calls_url, config=daemon_config(profile, config))


def last_user_words(daemon: Daemon) -> str:
    """What the daemon remembers the user said last (shown: ``log_transcripts`` is on)."""
    said = [e["text"] for e in daemon.status()["history"]["text"] if e["role"] == "user"]
    assert said, daemon.status()["history"]
    return str(said[-1])


def seeded_call(peer: Peer, roles: int) -> dict[str, Any] | None:
    """The active call (a Live session), once it is one seeded with at least ``roles`` items."""
    call = peer.active_call()
    if call is not None and len(call["seeded_items"]) >= roles:
        return call
    return None
