"""Host candidates for aiortc's ICE agent.

aioice never offers 127.0.0.1, so on a loopback-only network (a test, or a device talking to a
peer on the same box with no interface up) a call would have no candidate at all. When both ends
are on this machine we hand aioice the loopback address instead.
"""

from __future__ import annotations

from collections.abc import Sequence

import aioice.ice

_original = aioice.ice.get_host_addresses


def use_host_addresses(addresses: Sequence[str] | None) -> None:
    """Make aioice gather only ``addresses`` (None restores its own discovery). Process-wide."""
    if addresses is None:
        aioice.ice.get_host_addresses = _original
        return
    fixed = list(addresses)

    def _fixed(use_ipv4: bool, use_ipv6: bool) -> list[str]:
        return [a for a in fixed if (":" in a and use_ipv6) or (":" not in a and use_ipv4)]

    aioice.ice.get_host_addresses = _fixed


def tune_consent(liveness_timeout_s: float) -> None:
    """Make ICE consent freshness (RFC 7675) notice a vanished service within about
    ``liveness_timeout_s``. aioice checks every 5 s and gives up after 6 misses (~35 s): a
    service that is silent between replies (OpenAI sends no RTP then) and goes away would
    look healthy all that time. Checks every 1 s (a ~100-byte STUN request answered by every
    WebRTC endpoint) and give up after ``liveness_timeout_s`` of misses. Process-wide."""
    aioice.ice.CONSENT_INTERVAL = 1
    aioice.ice.CONSENT_FAILURES = max(2, round(liveness_timeout_s))
