"""A journald stand-in that is the real socket: in a private mount namespace (unshare -m, root),
/run/systemd/journal is a bind mount of a test directory whose ``socket`` the test has bound, so
libsystemd's sd_journal_send() in the child delivers its native-protocol datagrams to the test.
"""

from __future__ import annotations

import shutil
import socket
import struct
import subprocess
from pathlib import Path

NAMESPACE_SCRIPT = (
    "mount -t tmpfs tmpfs /run && mkdir -p /run/systemd/journal"
    ' && mount --bind "$0" /run/systemd/journal && exec "$@"'
)


def parse_native(data: bytes) -> dict[str, str]:
    """One journal native-protocol datagram: KEY=value lines, or KEY\\n<le64 size><bytes>\\n."""
    fields: dict[str, str] = {}
    i = 0
    while i < len(data):
        nl = data.index(b"\n", i)
        eq = data.find(b"=", i, nl)
        if eq != -1:
            fields[data[i:eq].decode()] = data[eq + 1 : nl].decode(errors="replace")
            i = nl + 1
        else:
            size = struct.unpack_from("<Q", data, nl + 1)[0]
            start = nl + 9
            fields[data[i:nl].decode()] = data[start : start + size].decode(errors="replace")
            i = start + size + 1
    return fields


def namespaces_work() -> bool:
    if shutil.which("unshare") is None:
        return False
    proc = subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "sh", "-c", "mount -t tmpfs t /run"],
        capture_output=True,
    )
    return proc.returncode == 0


class JournalSocket:
    def __init__(self, directory: Path) -> None:
        directory.mkdir()
        self.dir = directory
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(directory / "socket"))
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        self.sock.settimeout(0.05)
        self.entries: list[dict[str, str]] = []

    def wrap(self, argv: list[str]) -> list[str]:
        """argv run in a namespace where /run/systemd/journal/socket is this socket."""
        prefix = ["unshare", "--mount", "--propagation", "private", "sh", "-c"]
        return [*prefix, NAMESPACE_SCRIPT, str(self.dir), *argv]

    def drain(self) -> list[dict[str, str]]:
        while True:
            try:
                data = self.sock.recv(1 << 20)
            except TimeoutError:
                return self.entries
            self.entries.append(parse_native(data))

    def events(self, name: str) -> list[dict[str, str]]:
        return [e for e in self.drain() if e.get("RTEDGE_EVENT") == name]

    def close(self) -> None:
        self.sock.close()
