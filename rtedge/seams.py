"""The private parts of libraries that rtedge reaches into, and the releases each was read against.

Each seam falls back or warns at run time when it is missing; ``tests/test_seams.py`` fails
loudly, naming the library and the module to re-read, as soon as an installed release is not one
listed here. pyproject pins these libraries to the same minor release so a fresh install cannot
drift past what was checked.
"""

from __future__ import annotations

from typing import Final

#: library -> releases whose private code the seams below were checked against
CHECKED: Final[dict[str, tuple[str, ...]]] = {
    "aiortc": ("1.16.0",),
    "aioice": ("0.13.0",),
}

#: (library, rtedge module, what it uses) for every seam, for the test's message and for readers
SEAMS: Final = (
    (
        "aiortc",
        "rtedge/rtc/jitter.py",
        "RTCRtpReceiver's name-mangled __jitter_buffer and __kind (swapped for our buffer)",
    ),
    (
        "aiortc",
        "rtedge/realtime/sctpcap.py",
        "sctp.InboundStream.add_chunk/pop_messages and RTCSctpTransport._get_inbound_stream, "
        "_receive_data_chunk, _advertised_rwnd (message cap inside reassembly)",
    ),
    (
        "aioice",
        "rtedge/rtc/ice.py",
        "aioice.ice.get_host_addresses (module global), Connection.query_consent with its "
        "_nominated, _query_consent_task, build_request, _emit_event, and "
        "Connection.data_received (wrapped: a packet from the peer is liveness), "
        "stun.RETRY_RTO (consent by the clock)",
    ),
)
