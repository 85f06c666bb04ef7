"""``rtedge peer``: run the local Realtime peer until SIGINT/SIGTERM.

The integrator's ``rtedge`` CLI calls ``add_arguments`` and ``run``; ``python -m rtedge.peer``
does the same on its own.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
from typing import Final

from aiohttp import web

from rtedge.binderr import describe_bind_error, split_listen
from rtedge.logs import setup_logging
from rtedge.peer.config import PeerConfig
from rtedge.peer.httputil import is_loopback

DEFAULT_LISTEN: Final = "127.0.0.1:8788"
KEYS_ENV: Final = "RTEDGE_PEER_API_KEYS"

log = logging.getLogger("rtedge.peer")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--listen",
        default=DEFAULT_LISTEN,
        metavar="HOST:PORT",
        help=f"address to serve on (default {DEFAULT_LISTEN})",
    )
    parser.add_argument(
        "--mode",
        choices=("assistant", "echo", "loopback"),
        default="assistant",
        help="assistant: short spoken replies; echo: replies play back the committed input audio; "
        "loopback: received audio is sent straight back (default assistant)",
    )
    parser.add_argument(
        "--profile",
        choices=("openai", "minimal"),
        default="openai",
        help="openai: OpenAI's GA service; minimal: an independent server with less (no "
        "output_audio_buffer events, own VAD, raw SDP only, DELETE hangup) (default openai)",
    )
    parser.add_argument(
        "--api-key",
        action="append",
        default=[],
        metavar="KEY",
        help=f"accepted API key (repeatable; also ${KEYS_ENV}, comma-separated). "
        "None configured: any non-empty key is accepted",
    )
    parser.add_argument(
        "--max-session-s",
        type=float,
        default=3600.0,
        help="session cap in seconds; at the cap the peer sends session_expired and closes",
    )
    parser.add_argument(
        "--live-usage-interval-s",
        type=float,
        default=60.0,
        help="GPT-Live: seconds between session.usage.updated events (default 60)",
    )
    parser.add_argument(
        "--live-start-delay-s",
        type=float,
        default=0.0,
        help="GPT-Live: hold session.started this long (a stuck service; default 0)",
    )
    parser.add_argument(
        "--live-delegate",
        choices=("auto", "client", "tool"),
        default="auto",
        help="GPT-Live: delegate every turn to the client, or to the first tool (default auto)",
    )
    parser.add_argument(
        "--image-fps", type=float, default=25.0, help="avatar frames per second (default 25)"
    )
    parser.add_argument(
        "--ice-host",
        action="append",
        default=[],
        metavar="ADDR",
        help="host address offered as ICE candidate (repeatable; default 127.0.0.1 when "
        "listening on loopback, else aioice's own discovery)",
    )
    parser.add_argument(
        "--jitter-buffer",
        choices=("rtedge", "aiortc"),
        default="rtedge",
        help="receive buffer for the client's audio: rtedge releases packets as soon as they are "
        "in order; aiortc holds each 80 ms (default rtedge)",
    )
    parser.add_argument(
        "--log-level",
        default="INFO",
        type=str.upper,
        choices=("DEBUG", "INFO", "WARNING", "ERROR"),
        help="log level (default INFO)",
    )


def config_from_args(args: argparse.Namespace) -> PeerConfig:
    host, _ = split_listen(args.listen)
    keys = [k.strip() for k in os.environ.get(KEYS_ENV, "").split(",") if k.strip()]
    keys += [k for k in args.api_key if k]
    ice: tuple[str, ...] | None = tuple(args.ice_host) or None
    if ice is None and (is_loopback(host) or host == "localhost"):
        ice = ("127.0.0.1",)
    if args.max_session_s <= 0 or args.image_fps <= 0 or args.live_usage_interval_s <= 0:
        raise ValueError("--max-session-s, --image-fps, --live-usage-interval-s must be positive")
    return PeerConfig(
        mode=args.mode,
        profile=args.profile,
        api_keys=tuple(keys),
        max_session_s=args.max_session_s,
        live_usage_interval_s=args.live_usage_interval_s,
        live_start_delay_s=max(0.0, args.live_start_delay_s),
        live_delegate=args.live_delegate,
        image_fps=args.image_fps,
        ice_hosts=ice,
        jitter_buffer=args.jitter_buffer,
    )


def run(args: argparse.Namespace) -> int:
    """Serve until SIGINT/SIGTERM; 0 on a clean stop, 78 (EX_CONFIG) on a bad option, 1 when
    the address cannot be listened on."""
    setup_logging(args.log_level)  # the daemon's format, and aioice's per-pair lines kept out
    try:
        host, port = split_listen(args.listen)
        config = config_from_args(args)
    except ValueError as exc:
        log.error("%s", exc)
        return 78
    try:
        return asyncio.run(_serve(config, host, port))
    except OSError as exc:
        hint = "is a peer already running, from rtedge demo perhaps?"
        log.error(
            "cannot start: %s", describe_bind_error("--listen", args.listen, exc, in_use_hint=hint)
        )
        return 1


async def _serve(config: PeerConfig, host: str, port: int) -> int:
    from rtedge.peer.server import create_app

    runner = web.AppRunner(create_app(config), access_log=None)
    await runner.setup()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        loop.add_signal_handler(sig, stop.set)
    try:
        site = web.TCPSite(runner, host, port)
        await site.start()
        shown = f"[{host}]" if ":" in host else host
        log.info(
            "listening on http://%s:%d (mode %s, %s keys)",
            shown,
            port,
            config.mode,
            "configured" if config.api_keys else "any",
        )
        await stop.wait()
        log.info("stopping")
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            loop.remove_signal_handler(sig)
        await runner.cleanup()
    return 0
