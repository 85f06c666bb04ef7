"""``rtedge relay``: serve the relay, or mint/revoke a device token (rtedge.relay)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
from pathlib import Path

from aiohttp import web

from rtedge.binderr import split_listen
from rtedge.httpguard import GuardPolicy
from rtedge.logs import setup_logging
from rtedge.relay import TokenBook, create_app
from rtedge.secretfile import FileProblem, read_secret

log = logging.getLogger("rtedge.relay")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--listen", default="127.0.0.1:8790", help="HOST:PORT (default 127.0.0.1:8790)")
    p.add_argument("--tokens", type=Path, required=True, help="device token file (hashed)")
    p.add_argument("--upstream", default="https://api.openai.com", help="the service's base URL")
    p.add_argument(
        "--key-file",
        type=Path,
        help="file holding the project key (or a systemd credential: $CREDENTIALS_DIRECTORY)",
    )
    p.add_argument("--allowed-host", action="append", default=[], help="extra Host name accepted")
    p.add_argument("--mint", metavar="DEVICE", help="add a device token, print it, exit")
    p.add_argument("--revoke", metavar="DEVICE", help="revoke a device's token, exit")


def run(args: argparse.Namespace) -> int:
    setup_logging("INFO")
    book = TokenBook(args.tokens)
    if args.mint:
        print(book.mint(args.mint))
        return 0
    if args.revoke:
        if not book.revoke(args.revoke):
            log.error("no token for device %r", args.revoke)
            return 1
        return 0
    try:
        host, port = split_listen(args.listen)
        if args.key_file is None:
            raise ValueError("--key-file is required to serve")
        key = read_secret(args.key_file)
    except (ValueError, FileProblem) as exc:
        log.error("%s", exc)
        return 78
    policy = GuardPolicy.build(host, args.allowed_host)
    return asyncio.run(_serve(create_app(args.upstream, key, book, policy), host, port))


async def _serve(app: web.Application, host: str, port: int) -> int:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await web.TCPSite(runner, host, port).start()
        log.info("relay listening on http://%s:%d", host, port)
        await stop.wait()
    finally:
        await runner.cleanup()
    return 0
