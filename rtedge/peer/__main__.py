"""``python -m rtedge.peer --listen 127.0.0.1:8788``."""

from __future__ import annotations

import argparse
import sys

from rtedge.peer.cli import add_arguments, run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="rtedge peer", description="Local OpenAI-Realtime-compatible WebRTC peer."
    )
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
