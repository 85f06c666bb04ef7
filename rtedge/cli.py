"""Command line: ``rtedge run | peer | demo | check | devices | status``."""

from __future__ import annotations

import argparse
import json
import sys
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path

from rtedge import __version__
from rtedge.settings import (
    ConfigError,
    Settings,
    load_settings,
    masked_dump,
    require_credentials,
    resolve_config_path,
)

EX_OK = 0
EX_UNAVAILABLE = 69
EX_CONFIG = 78


def _config_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        "-c",
        type=Path,
        default=None,
        help="TOML config file (default: /etc/rtedge/rtedge.toml when it exists)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rtedge",
        description="Edge appliance daemon for OpenAI-Realtime-compatible WebRTC services.",
    )
    parser.add_argument("--version", action="version", version=f"rtedge {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("run", help="run the daemon")
    _config_arg(p)

    p = sub.add_parser("peer", help="run the local Realtime-compatible service")
    from rtedge.peer.cli import add_arguments as add_peer_arguments

    add_peer_arguments(p)

    p = sub.add_parser(
        "demo", help="start the local peer and the daemon, drive one push-to-talk turn, report"
    )
    p.add_argument("--workdir", type=Path, default=Path("run/demo"), help="scratch directory")
    p.add_argument("--keep", action="store_true", help="leave both running until Ctrl-C")
    p.add_argument(
        "--time-scale",
        type=float,
        default=1.0,
        help="stretch every wait and the call timeouts by this factor (slow or emulated machines)",
    )

    p = sub.add_parser(
        "check",
        help="validate the config, open the audio devices once and show what would be used "
        "(exit 78: bad config, 69: a device does not work)",
    )
    _config_arg(p)

    sub.add_parser("devices", help="list ALSA PCMs and sound cards")

    p = sub.add_parser("status", help="print the running daemon's /status")
    _config_arg(p)
    p.add_argument("--url", default=None, help="status URL (default: from [health] listen)")
    return parser


def _load(path: Path | None, *, for_service: bool = False) -> Settings:
    try:
        settings = load_settings(path)
        if for_service:
            require_credentials(settings)
        return settings
    except ConfigError as exc:
        print(f"rtedge: config error: {exc}", file=sys.stderr)
        raise SystemExit(EX_CONFIG) from None


def cmd_check(args: argparse.Namespace) -> int:
    settings = _load(args.config, for_service=True)
    path = resolve_config_path(args.config)
    print(f"config: {path if path else '(defaults and environment only)'}")
    print(json.dumps(masked_dump(settings), indent=2))
    from rtedge.audio.alsalib import silence_alsa_lib_errors
    from rtedge.audio.devices import list_pcms, probe

    silence_alsa_lib_errors()

    print("ALSA PCMs:", ", ".join(list_pcms()) or "(none)")
    failed = []
    for name, result in probe(settings.audio).items():
        print(f"{name}: {result}")
        if not result.startswith("ok"):
            failed.append(name)
    display = settings.display
    if display.backend == "fbdev":
        print(f"display: fbdev {display.fbdev} (geometry from {display.sysfs})")
    elif display.backend == "mjpeg":
        print(f"display: MJPEG at http://{settings.health.listen}/avatar.mjpeg")
    else:
        print("display: none")
    if failed:
        # the config is valid, but the daemon would run without these until they appear
        print(f"rtedge: device check failed: {', '.join(failed)}", file=sys.stderr)
        return EX_UNAVAILABLE
    return EX_OK


def cmd_devices(_: argparse.Namespace) -> int:
    from rtedge.audio.alsalib import silence_alsa_lib_errors
    from rtedge.audio.devices import list_cards, list_pcms

    silence_alsa_lib_errors()

    print("cards:")
    for card in list_cards():
        print(f"  {card}")
    print("PCMs:")
    for pcm in list_pcms():
        print(f"  {pcm}")
    return EX_OK


def cmd_status(args: argparse.Namespace) -> int:
    url = args.url
    if url is None:
        url = f"http://{_load(args.config).health.listen}/status"
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            data = json.load(resp)
    except (urllib.error.URLError, OSError) as exc:
        print(f"rtedge: cannot reach {url}: {exc}", file=sys.stderr)
        return EX_UNAVAILABLE
    print(json.dumps(data, indent=2))
    return EX_OK if data.get("healthy") else 1


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "run":
        # A config error is reported before the heavy imports.
        settings = _load(args.config, for_service=True)
        from rtedge.app import run

        return run(settings)
    if args.command == "peer":
        from rtedge.peer.cli import run as run_peer

        code: int = run_peer(args)
        return code
    if args.command == "demo":
        from rtedge.demo import run_demo

        return run_demo(args.workdir, keep=args.keep, time_scale=args.time_scale)
    if args.command == "check":
        return cmd_check(args)
    if args.command == "devices":
        return cmd_devices(args)
    return cmd_status(args)


if __name__ == "__main__":
    sys.exit(main())
