from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.faults.rig import FaultDaemon, probe_env
from tests.support import Daemon


@pytest.fixture
def fault_daemon(daemon_factory: Callable[..., Daemon]) -> Iterator[Callable[..., FaultDaemon]]:
    """Like ``daemon_factory`` but with the probe loaded and a health watcher running."""
    made: list[FaultDaemon] = []
    dirs: list[str] = []

    def make(calls_url: str, *, start: bool = True, wait: bool = True, **kw: Any) -> FaultDaemon:
        sockdir = tempfile.mkdtemp(prefix="rtp-")  # AF_UNIX paths are short: not under tmp_path
        dirs.append(sockdir)
        sock = Path(sockdir) / "probe.sock"
        env = {**probe_env(sock), **kw.pop("env", {})}
        config = kw.pop("config", {})
        config["reconnect"] = {"healthy_after_s": 1, **config.get("reconnect", {})}
        kw["config"] = config
        daemon = daemon_factory(calls_url, start=False, env=env, **kw)
        fd = FaultDaemon(daemon, sock)
        made.append(fd)
        if start:
            fd.start(wait_healthy=wait)
        return fd

    yield make
    for fd in made:
        if fd.watch is not None:
            fd.watch.stop()
    for d in dirs:
        shutil.rmtree(d, ignore_errors=True)
