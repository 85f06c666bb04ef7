"""Two network namespaces joined by a veth pair, for the network fault test.

Addresses are in 10.231.0.0/16, inside the namespaces only: nothing is routed to or from the
host's own network. The test process reaches each namespace's loopback through a thread that
has joined it (``setns(2)``): sockets belong to the namespace of the thread that creates them.
"""

from __future__ import annotations

import ctypes
import os
import random
import subprocess
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from tests.support import http

CLONE_NEWNET = 0x40000000


class NetnsUnavailable(Exception):
    """The machine refuses namespaces (no privilege, no kernel support)."""


def run(*argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=20)
    if check and proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)}: {proc.stderr.strip() or proc.returncode}")
    return proc


class Namespace:
    def __init__(self, name: str) -> None:
        self.name = name
        self._pool: ThreadPoolExecutor | None = None

    def argv(self, *argv: str) -> list[str]:
        return ["ip", "netns", "exec", self.name, *argv]

    def ip(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return run("ip", "-n", self.name, *args, check=check)

    def tc(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return run(*self.argv("tc", *args), check=check)

    def _join(self) -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        fd = os.open(f"/var/run/netns/{self.name}", os.O_RDONLY)
        try:
            if libc.setns(fd, CLONE_NEWNET) != 0:
                err = ctypes.get_errno()
                raise OSError(err, f"setns {self.name}: {os.strerror(err)}")
        finally:
            os.close(fd)

    def http(self, method: str, url: str, body: Any = None, timeout: float = 5) -> tuple[int, Any]:
        """``tests.support.http`` from inside this namespace."""
        if self._pool is None:
            self._pool = ThreadPoolExecutor(1, initializer=self._join, thread_name_prefix=self.name)
        return self._pool.submit(http, method, url, body, timeout).result(timeout + 5)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False)
        run("ip", "netns", "del", self.name, check=False)


class VethPair:
    """Namespaces ``daemon`` and ``peer``; veth ends ``dev_d``/``dev_p``; ``addr_d``/``addr_p``."""

    def __init__(self) -> None:
        tag = f"{os.getpid() % 10000}{random.randrange(100):02d}"
        net = random.randrange(1, 250)
        self.daemon = Namespace(f"rtd{tag}")
        self.peer = Namespace(f"rtp{tag}")
        self.dev_d, self.dev_p = f"rtd{tag}v", f"rtp{tag}v"
        self.addr_d, self.addr_p = f"10.231.{net}.1", f"10.231.{net}.2"
        made: list[Namespace] = []
        try:
            for ns in (self.daemon, self.peer):
                run("ip", "netns", "add", ns.name)
                made.append(ns)
        except (RuntimeError, OSError) as exc:
            for ns in made:
                ns.close()
            raise NetnsUnavailable(str(exc)) from None
        try:
            run("ip", "link", "add", self.dev_d, "type", "veth", "peer", "name", self.dev_p)
            run("ip", "link", "set", self.dev_d, "netns", self.daemon.name)
            run("ip", "link", "set", self.dev_p, "netns", self.peer.name)
            for ns, dev, addr in (
                (self.daemon, self.dev_d, self.addr_d),
                (self.peer, self.dev_p, self.addr_p),
            ):
                ns.ip("addr", "add", f"{addr}/24", "dev", dev)
                ns.ip("link", "set", dev, "up")
                ns.ip("link", "set", "lo", "up")
        except (RuntimeError, OSError) as exc:
            self.close()
            raise NetnsUnavailable(str(exc)) from None

    def cut(self) -> None:
        self.daemon.ip("link", "set", self.dev_d, "down")

    def restore(self) -> None:
        self.daemon.ip("link", "set", self.dev_d, "up")

    def netem(self, *params: str) -> str | None:
        """``tc qdisc ... netem PARAMS`` on both ends; the kernel's refusal as text, else None."""
        for ns, dev in ((self.daemon, self.dev_d), (self.peer, self.dev_p)):
            proc = ns.tc("qdisc", "replace", "dev", dev, "root", "netem", *params, check=False)
            if proc.returncode != 0:
                return proc.stderr.strip() or f"tc exit {proc.returncode}"
        return None

    def clear_netem(self) -> None:
        for ns, dev in ((self.daemon, self.dev_d), (self.peer, self.dev_p)):
            ns.tc("qdisc", "del", "dev", dev, "root", check=False)

    def close(self) -> None:
        self.daemon.close()  # deleting a namespace deletes its end of the veth, and so the pair
        self.peer.close()
