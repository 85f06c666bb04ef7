"""``python -m rtedge.peer`` as a real process: options, ready line, a call, clean SIGTERM."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import aiohttp

from tests.peer.client import Client
from tests.poll import until
from tests.ports import free_port
from tests.support import scaled

ROOT = Path(__file__).resolve().parents[2]


async def start(
    *args: str, env: dict[str, str] | None = None
) -> tuple[asyncio.subprocess.Process, int]:
    port = free_port()
    full_env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "rtedge.peer",
        "--listen",
        f"127.0.0.1:{port}",
        *args,
        stderr=asyncio.subprocess.PIPE,
        env=full_env,
    )
    assert proc.stderr is not None
    ready = f"listening on http://127.0.0.1:{port}"
    lines = []
    while True:
        line = await asyncio.wait_for(proc.stderr.readline(), scaled(20))
        if not line:
            raise AssertionError(f"peer exited: {b''.join(lines).decode()}")
        lines.append(line)
        if ready in line.decode():
            return proc, port


async def test_subprocess_call_keys_and_sigterm() -> None:
    proc, port = await start(
        "--api-key", "k1", "--log-level", "INFO", env={"RTEDGE_PEER_API_KEYS": "k2, k3"}
    )
    url = f"http://127.0.0.1:{port}"
    c = Client(url)
    try:
        async with (
            aiohttp.ClientSession() as http,
            http.post(
                f"{url}/v1/realtime/calls",
                data="v=0",
                headers={"Authorization": "Bearer nope", "Content-Type": "application/sdp"},
            ) as resp,
        ):
            assert resp.status == 401
        await c.connect(
            key="k3", session={"type": "realtime", "audio": {"input": {"turn_detection": None}}}
        )
        c.send(
            {
                "type": "conversation.item.create",
                "item": {
                    "type": "message",
                    "role": "user",
                    "content": [{"type": "input_text", "text": "what is 6 times 7?"}],
                },
            }
        )
        await c.request({"type": "response.create"}, "response.done")
        assert c.of("response.output_audio_transcript.done")[0]["transcript"] == "6 times 7 is 42."
        await c.wait_for("output_audio_buffer.stopped", within=15)
        assert len(c.received.frames) > 50
        assert not c.violations
        # SIGTERM: the active call is closed and the process exits 0.
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), scaled(10)) == 0
        await until(lambda: c.pc.connectionState in ("closed", "failed") or c.closed.is_set(), 10)
        # One call is a line or two at INFO, not aioice's four per candidate pair.
        assert proc.stderr is not None
        log = (await proc.stderr.read()).decode()
        assert "call rtc_" in log and "aioice" not in log, log
    finally:
        await c.close()
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


def test_bad_listen_is_config_error() -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        [sys.executable, "-m", "rtedge.peer", "--listen", "nonsense"],
        env=env,
        capture_output=True,
        text=True,
        timeout=scaled(30),
    )
    assert result.returncode == 78
    assert "HOST:PORT" in result.stderr


def test_listen_address_in_use_is_one_line() -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "rtedge", "peer", "--listen", f"127.0.0.1:{port}"],
            env=env,
            capture_output=True,
            text=True,
            timeout=30,
        )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr, result.stderr
    errors = [line for line in result.stderr.splitlines() if "ERROR" in line]
    assert len(errors) == 1, result.stderr
    assert errors[0].endswith(
        f"cannot start: --listen 127.0.0.1:{port}: address already in use (another program is "
        "listening there; is a peer already running, from rtedge demo perhaps?)"
    ), result.stderr
    assert len(result.stderr.splitlines()) <= 2, result.stderr  # the voice line, then that one
