"""Every private seam into a library is checked here against the installed release: a new
release fails with the library, its version and the rtedge module to re-read, before a call
quietly loses a feature (the seams fall back at run time with only a log line)."""

from __future__ import annotations

import importlib.metadata

import aioice.ice
import aioice.stun
import pytest
from aiortc import RTCPeerConnection

from rtedge.seams import CHECKED, SEAMS


@pytest.mark.parametrize("library", sorted(CHECKED))
def test_installed_release_is_one_the_seams_were_read_against(library: str) -> None:
    installed = importlib.metadata.version(library)
    where = "; ".join(f"{module}: {what}" for lib, module, what in SEAMS if lib == library)
    assert installed in CHECKED[library], (
        f"{library} {installed} is installed, the seams were read against {CHECKED[library]}. "
        f"Re-read {where}; then add the release to rtedge/seams.py"
    )


def test_every_library_with_a_seam_is_listed() -> None:
    assert {lib for lib, _, _ in SEAMS} == set(CHECKED)


async def test_the_aiortc_receiver_still_has_the_attributes_the_jitter_seam_swaps() -> None:
    from aiortc.jitterbuffer import JitterBuffer

    from rtedge.rtc import jitter

    pc = RTCPeerConnection()
    try:
        receiver = pc.addTransceiver("audio").receiver
        assert getattr(receiver, jitter._KIND_ATTR) == "audio"
        assert isinstance(getattr(receiver, jitter._ATTR), JitterBuffer)
    finally:
        await pc.close()


def test_aioice_still_has_what_the_consent_seam_replaces() -> None:
    assert callable(aioice.ice.get_host_addresses)
    connection = aioice.ice.Connection(ice_controlling=True)
    for name in ("query_consent", "build_request", "_emit_event", "close", "data_received"):
        assert callable(getattr(connection, name)), name
    for name in ("_nominated", "_query_consent_task"):
        assert hasattr(connection, name), name
    assert isinstance(aioice.stun.RETRY_RTO, float)
