"""The data-channel size cap inside aiortc's SCTP reassembly, on two real aiortc peers over
loopback: a message past the cap is refused while it arrives (never joined whole), the messages
around it arrive in order, and the receive window is given back so the channel keeps flowing."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Iterator

import aiortc
import pytest
from aiortc import RTCDataChannel, RTCPeerConnection

from rtedge.realtime import sctpcap
from rtedge.rtc.ice import use_host_addresses

LIMIT = 1 << 20


def test_aiortc_version_is_one_the_seam_was_checked_against() -> None:
    """Fails loudly when aiortc changes: re-read InboundStream.add_chunk/pop_messages and
    RTCSctpTransport._get_inbound_stream/_receive_data_chunk, then add the version."""
    assert aiortc.__version__ in sctpcap.CHECKED_AIORTC, (
        f"aiortc {aiortc.__version__}: rtedge/realtime/sctpcap.py was checked against "
        f"{sctpcap.CHECKED_AIORTC}; re-check its seam"
    )


@pytest.fixture(autouse=True)
def loopback_ice() -> Iterator[None]:
    use_host_addresses(["127.0.0.1"])
    yield
    use_host_addresses(None)


class Pair:
    def __init__(self) -> None:
        self.sender = RTCPeerConnection()
        self.receiver = RTCPeerConnection()
        self.channel: RTCDataChannel = self.sender.createDataChannel("oai-events", ordered=True)
        self.received: list[str | bytes] = []
        self.got = asyncio.Event()
        self.refused: list[int] = []

    async def connect(self, cap: bool) -> None:
        opened = asyncio.Event()
        self.channel.on("open", opened.set)

        @self.receiver.on("datachannel")
        def _on_channel(channel: RTCDataChannel) -> None:
            @channel.on("message")
            def _on_message(message: str | bytes) -> None:
                self.received.append(message)
                self.got.set()

        await self.sender.setLocalDescription(await self.sender.createOffer())
        await self.receiver.setRemoteDescription(self.sender.localDescription)
        if cap:
            assert self.receiver.sctp is not None
            assert sctpcap.install(self.receiver.sctp, LIMIT, self.refused.append)
        await self.receiver.setLocalDescription(await self.receiver.createAnswer())
        await self.sender.setRemoteDescription(self.receiver.localDescription)
        async with asyncio.timeout(20):
            await opened.wait()
        # A hostile service ignores the size the client advertised (a=max-message-size).
        assert self.sender.sctp is not None
        self.sender.sctp._remote_max_message_size = 0

    async def wait_count(self, n: int) -> None:
        async with asyncio.timeout(60):
            while len(self.received) < n:
                self.got.clear()
                await self.got.wait()

    async def close(self) -> None:
        for pc in (self.sender, self.receiver):
            with contextlib.suppress(Exception):
                await pc.close()


@pytest.fixture
async def pair() -> AsyncIterator[Pair]:
    p = Pair()
    yield p
    await p.close()


async def test_message_past_the_cap_is_refused_while_reassembling(pair: Pair) -> None:
    await pair.connect(cap=True)
    transport = pair.receiver.sctp
    assert transport is not None
    rwnd0 = transport._advertised_rwnd
    big = "x" * (3 << 20)
    t0 = time.monotonic()
    pair.channel.send("before")
    pair.channel.send(big)
    pair.channel.send("after")
    await pair.wait_count(2)
    elapsed = time.monotonic() - t0
    await asyncio.sleep(0.2)  # nothing else may trail in
    stream = next(iter(transport._inbound_streams.values()))
    print(f"CAP refused at {pair.refused} bytes; 3 MiB crossed in {elapsed:.2f}s")
    assert pair.received == ["before", "after"]
    assert len(pair.refused) == 1 and LIMIT < pair.refused[0] <= LIMIT + 2048
    assert stream.reassembly == []
    assert transport._advertised_rwnd == rwnd0  # every dropped byte credited back
    # The channel goes on: a message right at the cap still arrives whole.
    pair.channel.send("y" * LIMIT)
    await pair.wait_count(3)
    assert len(pair.received[2]) == LIMIT


async def test_without_the_cap_aiortc_delivers_it_whole(pair: Pair) -> None:
    """The control: what the cap prevents does happen on this aiortc."""
    await pair.connect(cap=False)
    pair.channel.send("x" * (3 << 20))
    await pair.wait_count(1)
    assert len(pair.received[0]) == 3 << 20
