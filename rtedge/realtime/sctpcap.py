"""A size cap on data-channel messages while aiortc reassembles them, not after.

aiortc (checked on 1.16.0) joins every fragment of an SCTP message before handing it over,
whatever the size, and rescans its whole reassembly list for each fragment: one 26 MB message
from a broken or hostile service costs seconds of CPU on the event loop and the full copy in
memory before any size check of ours could run. aiortc has no receive-side limit to set.

The narrowest seam: each stream's ``InboundStream`` (``add_chunk`` / ``pop_messages``) is made
by ``RTCSctpTransport._get_inbound_stream``; ``install`` replaces that one method on one
transport with a factory of ``CappedInboundStream``, which counts the bytes buffered per message
and, once a message passes the cap, drops its fragments (now and as they keep coming) and skips
its stream sequence number so later messages flow. Dropped bytes are credited back to the
receive window the transport debited for them, so the association never stalls. The message is
reported through ``on_refused``; the call goes on.

``tests/realtime/test_sctpcap.py`` names the aiortc versions this was checked against and fails
loudly when the library moves; ``install`` refuses (returns False, logs) when the seam is gone.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Final

from aiortc import rtcsctptransport as sctp

from rtedge.seams import CHECKED

log = logging.getLogger(__name__)

#: aiortc releases whose reassembly this module was read against.
CHECKED_AIORTC: Final = CHECKED["aiortc"]
_KEEP_REFUSED: Final = 64  # refused sequence numbers remembered (for straggling fragments)

_UNORDERED: Final = sctp.SCTP_DATA_UNORDERED
_LAST: Final = sctp.SCTP_DATA_LAST_FRAG


def _ordered(chunk: Any) -> bool:
    return not (chunk.flags & _UNORDERED)


class CappedInboundStream(sctp.InboundStream):
    """aiortc's reassembly with a per-message byte cap (ordered messages) and a cap on the
    bytes of unordered fragments buffered at once."""

    def __init__(
        self, limit: int, credit: Callable[[int], None], on_refused: Callable[[int], None]
    ) -> None:
        super().__init__()
        self._limit = limit
        self._credit = credit
        self._on_refused = on_refused
        self._sizes: dict[int, int] = {}  # ordered stream_seq -> bytes buffered
        self._refused: dict[int, bool] = {}  # ordered stream_seq -> its last fragment came
        self._unordered = 0
        self.refused = 0

    def add_chunk(self, chunk: Any) -> None:
        size = len(chunk.user_data)
        if not _ordered(chunk):
            self._add_unordered(chunk, size)
            return
        seq = chunk.stream_seq
        if seq in self._refused:
            self._credit(size)  # a fragment of a refused message: dropped on arrival
            if chunk.flags & _LAST:
                self._refused[seq] = True
            return
        total = self._sizes.get(seq, 0) + size
        if total <= self._limit:
            self._sizes[seq] = total
            super().add_chunk(chunk)
            return
        self.reassembly = [c for c in self.reassembly if not _ordered(c) or c.stream_seq != seq]
        self._sizes.pop(seq, None)
        self._refused[seq] = bool(chunk.flags & _LAST)
        while len(self._refused) > _KEEP_REFUSED:
            del self._refused[next(iter(self._refused))]
        self._credit(total)
        self._refuse(total)

    def _add_unordered(self, chunk: Any, size: int) -> None:
        super().add_chunk(chunk)
        self._unordered += size
        if self._unordered <= self._limit:
            return
        dropped = sum(len(c.user_data) for c in self.reassembly if not _ordered(c))
        self.reassembly = [c for c in self.reassembly if _ordered(c)]
        self._unordered = 0
        self._credit(dropped)
        self._refuse(dropped)

    def _refuse(self, size: int) -> None:
        self.refused += 1
        try:
            self._on_refused(size)
        except Exception:  # the SCTP receive path must not see our bug
            log.exception("on_refused failed")

    def pop_messages(self) -> Any:
        self._skip_refused()
        while True:
            for message in super().pop_messages():
                self._forget_delivered()
                yield message
                self._skip_refused()
            if not self._skip_refused():
                return

    def _skip_refused(self) -> bool:
        """Step the expected sequence number over refused messages that have ended."""
        advanced = False
        while self._refused.get(self.sequence_number) is True:
            self.sequence_number = (self.sequence_number + 1) & 0xFFFF  # 16-bit SSN
            advanced = True
        return advanced

    def _forget_delivered(self) -> None:
        present = {c.stream_seq for c in self.reassembly if _ordered(c)}
        for seq in [s for s in self._sizes if s not in present]:
            del self._sizes[seq]
        self._unordered = sum(len(c.user_data) for c in self.reassembly if not _ordered(c))


def seam_present(transport: Any) -> bool:
    return (
        callable(getattr(type(transport), "_get_inbound_stream", None))
        and isinstance(getattr(transport, "_inbound_streams", None), dict)
        and isinstance(getattr(transport, "_advertised_rwnd", None), int)
        and hasattr(sctp.InboundStream(), "reassembly")
        and hasattr(sctp.InboundStream(), "sequence_number")
    )


def install(transport: Any, limit: int, on_refused: Callable[[int], None]) -> bool:
    """Cap messages received on ``transport`` (an ``RTCSctpTransport``) at ``limit`` bytes.
    Returns False (and logs) when this aiortc has no such seam: the after-the-fact size check
    still runs then, but a huge message is reassembled first."""
    if not seam_present(transport):
        log.error(
            "aiortc %s: SCTP reassembly seam not found; messages are capped only after reassembly",
            getattr(sctp, "__version__", "?"),
        )
        return False

    def credit(size: int) -> None:
        transport._advertised_rwnd += size

    def get_inbound_stream(stream_id: int) -> sctp.InboundStream:
        streams: dict[int, sctp.InboundStream] = transport._inbound_streams
        stream = streams.get(stream_id)
        if stream is None:
            stream = streams[stream_id] = CappedInboundStream(limit, credit, on_refused)
        return stream

    transport._get_inbound_stream = get_inbound_stream
    return True
