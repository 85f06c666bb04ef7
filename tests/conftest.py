from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.scheduling import as_the_service_runs
from tests.support import PROFILES, TIME_SCALE, Daemon, Peer

# scripts/test runs the suite on pytest-xdist workers with ``--dist loadgroup``: the tests of one
# xdist_group run one after another on one worker, never beside each other. The "heavy" group
# holds what would load the machine together far beyond the rest and starve the real-time tests
# beside it: each Chromium is a few processes and ~300 MB; the room rig runs piper, AEC3 and the
# wake word in real time; the floods keep two processes at full CPU. Everything else is
# parallel-safe by construction: free ports from tests.ports (a slice per worker), files under
# tmp_path, processes killed by the handle that started them; the demo's tests, which use its
# usual fixed ports, are a group of their own (tests/test_demo.py). The tests that judge media
# quality in real time (the voice's fidelity end to end, the speaker's pace, lip sync: marker
# "media") join the heavy group: beside the heaviest tests and two busy loops they measured the
# machine rather than the daemon (a reply matched at 0.65, a frame shown 60 ms late).
GROUP_BY_MARKER = {"browser": "heavy", "heavy": "heavy", "media": "heavy"}


@pytest.hookimpl(tryfirst=True)  # before xdist's own hook reads the xdist_group marks
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        for marker, group in GROUP_BY_MARKER.items():
            if item.get_closest_marker(marker) and not item.get_closest_marker("xdist_group"):
                item.add_marker(pytest.mark.xdist_group(group))
    scale_timeouts(config, items)


@pytest.fixture(autouse=True)
def media_runs_as_the_service(request: pytest.FixtureRequest) -> Iterator[None]:
    """A test that judges media quality in real time runs with rtedge.service's scheduling
    (``tests.scheduling``); autouse, so before the fixtures that start its threads and peers."""
    if request.node.get_closest_marker("media") is None:
        yield
        return
    with as_the_service_runs():
        yield


def scale_timeouts(config: pytest.Config, items: list[pytest.Item]) -> None:
    """pytest-timeout's limit, the ini default or a test's own mark, scaled like every bound."""
    if TIME_SCALE == 1:
        return
    default = float(config.getini("timeout") or 0)
    for item in items:
        mark = item.get_closest_marker("timeout")
        seconds = default
        if mark is not None:
            seconds = float(mark.args[0] if mark.args else mark.kwargs.get("timeout", default))
        if seconds:
            item.add_marker(pytest.mark.timeout(seconds * TIME_SCALE), append=False)


@pytest.fixture
def peer_factory(tmp_path: Path) -> Iterator[Callable[..., Peer]]:
    started: list[Peer] = []

    def make(*args: str, port: int | None = None) -> Peer:
        peer = Peer(tmp_path, *args, port=port)
        started.append(peer)  # before start: one that fails to come up is stopped too
        return peer.start()

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


@pytest.fixture(params=PROFILES)
def profile(request: pytest.FixtureRequest) -> str:
    """Each service shape the daemon's end-to-end tests run against (tests.support.PROFILES)."""
    return str(request.param)
