"""Command line: ``rtedge run | peer | demo | check | devices | status``."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import tempfile
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path

from rtedge import __version__
from rtedge.footprint import defer_mime_tables
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

    p = sub.add_parser("relay", help="hold the project key for devices (per-device tokens)")
    from rtedge.relay_cli import add_arguments as add_relay_arguments

    add_relay_arguments(p)

    p = sub.add_parser(
        "demo", help="start the local peer and the daemon, drive one push-to-talk turn, report"
    )
    p.add_argument("--workdir", type=Path, default=Path("run/demo"), help="scratch directory")
    p.add_argument("--keep", action="store_true", help="leave both running until Ctrl-C")
    p.add_argument(
        "--provider",
        choices=("local", "live"),
        default="local",
        help="the API the demo speaks to the peer: Realtime calls (local) or GPT-Live (live)",
    )
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
    with contextlib.ExitStack() as stack:
        if _names_demo_devices(settings):
            # They exist only while `rtedge demo` runs (its own asound.conf); a copy of its own
            # lets the check open them, and never touches a running demo's files.
            from rtedge.audio.filedevices import demo_devices

            scratch = stack.enter_context(tempfile.TemporaryDirectory(prefix="rtedge-check-"))
            os.environ["ALSA_CONFIG_PATH"] = str(stack.enter_context(demo_devices(Path(scratch))))
            print(
                "demo devices: rtedge_mic and rtedge_speaker exist while `rtedge demo` runs; "
                "this check set up its own copies to open"
            )
        return _check(args, settings)


def _names_demo_devices(settings: Settings) -> bool:
    from rtedge.audio.filedevices import ASOUND_MARK, DEMO_MIC, DEMO_SPEAKER

    audio = settings.audio
    if not {audio.capture_device, audio.playback_device} <= {DEMO_MIC, DEMO_SPEAKER}:
        return False
    conf = os.environ.get("ALSA_CONFIG_PATH")
    if not conf:
        return True
    try:  # the user's own ALSA config, which may define these names, is used as it is
        return Path(conf).read_text(errors="replace").startswith(ASOUND_MARK)
    except OSError:
        return False


def _check(args: argparse.Namespace, settings: Settings) -> int:
    path = resolve_config_path(args.config)
    print(f"config: {path if path else '(defaults and environment only)'}")
    print(json.dumps(masked_dump(settings), indent=2))
    from rtedge.protocol.deprecations import model_warnings
    from rtedge.realtime.session_shape import build_session

    for warning in model_warnings(build_session(settings.realtime)):
        print(f"rtedge: warning: {warning}", file=sys.stderr)
    from rtedge.audio.alsalib import silence_alsa_lib_errors
    from rtedge.audio.devices import describe_pcms, probe

    silence_alsa_lib_errors()

    print("ALSA PCMs:")
    print("\n".join(describe_pcms()))
    failed = []
    for name, result in probe(settings.audio).items():
        print(f"{name}: {result}")
        if not result.startswith("ok"):
            failed.append(name)
    from rtedge.audio.wake import library_status

    # whether the hands-free libraries load here; a failure counts only when they are used
    used = {"wake": settings.wake.enabled, "vad": settings.wake.enabled}
    used["aec"] = settings.audio.echo_cancel or settings.audio.noise_suppression
    used["aec"] = used["aec"] or settings.audio.auto_gain
    for name, result in library_status().items():
        print(f"{name}: {result}{'' if used[name] else ' (not enabled)'}")
        if used[name] and not result.startswith("ok"):
            failed.append(name)
    display = settings.display
    if display.backend == "fbdev":
        missing = "" if display.fbdev.exists() else "; not there now, the daemon would retry"
        print(f"display: fbdev {display.fbdev} (geometry from {display.sysfs}{missing})")
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
    from rtedge.audio.devices import describe_pcms, list_cards

    silence_alsa_lib_errors()

    cards = list_cards()
    print("sound cards:" if cards else "sound cards: none found")
    for card in cards:
        print(f"  {card}")
    print("PCMs (names for [audio] capture_device / playback_device):")
    print("\n".join(describe_pcms()))
    return EX_OK


def cmd_status(args: argparse.Namespace) -> int:
    url = args.url
    if url is None:
        url = f"http://{_load(args.config).health.listen}/status"
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            data = json.load(resp)
    except urllib.error.HTTPError as exc:
        print(f"rtedge: {url} answered HTTP {exc.code}: is that rtedge?", file=sys.stderr)
        return EX_UNAVAILABLE
    except (urllib.error.URLError, OSError) as exc:
        reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
        if isinstance(reason, ConnectionRefusedError):
            why = "nothing is listening there: is the daemon running? (systemctl status rtedge)"
        elif isinstance(reason, TimeoutError):
            why = "no answer within 5 s"
        else:
            why = getattr(reason, "strerror", None) or str(reason)
        print(f"rtedge: cannot reach {url}: {why}", file=sys.stderr)
        return EX_UNAVAILABLE
    except ValueError:
        print(f"rtedge: {url} did not answer with JSON: is that rtedge?", file=sys.stderr)
        return EX_UNAVAILABLE
    print(json.dumps(data, indent=2))
    return EX_OK if data.get("healthy") else 1


def main(argv: Sequence[str] | None = None) -> int:
    defer_mime_tables()  # before the parser imports aiohttp.web (rtedge.footprint says why)
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
    if args.command == "relay":
        from rtedge.relay_cli import run as run_relay

        relay_code: int = run_relay(args)
        return relay_code
    if args.command == "demo":
        from rtedge.demo import run_demo

        return run_demo(
            args.workdir, keep=args.keep, time_scale=args.time_scale, provider=args.provider
        )
    if args.command == "check":
        return cmd_check(args)
    if args.command == "devices":
        return cmd_devices(args)
    return cmd_status(args)


if __name__ == "__main__":
    sys.exit(main())
