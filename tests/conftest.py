from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support import Daemon, Peer


@pytest.fixture
def peer_factory(tmp_path: Path) -> Iterator[Callable[..., Peer]]:
    started: list[Peer] = []

    def make(*args: str, port: int | None = None) -> Peer:
        peer = Peer(tmp_path, *args, port=port).start()
        started.append(peer)
        return peer

    yield make
    for peer in started:
        peer.kill()


@pytest.fixture
def daemon_factory(tmp_path: Path) -> Iterator[Callable[..., Daemon]]:
    started: list[Daemon] = []

    def make(calls_url: str, *, start: bool = True, wait: bool = True, **kw: Any) -> Daemon:
        workdir = tmp_path / f"daemon{len(started)}"
        workdir.mkdir()
        daemon = Daemon(workdir, calls_url, **kw)
        started.append(daemon)
        if start:
            daemon.start(wait_healthy=wait)
        return daemon

    yield make
    for daemon in started:
        daemon.alsa.stop()
        if daemon.proc is not None:
            daemon.proc.kill()
