"""The generated protocol modules are what scripts/gen_protocol.py makes from the installed
``openai`` package today: an SDK upgrade that changes the protocol fails here."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _generator() -> object:
    spec = importlib.util.spec_from_file_location("gen_protocol", ROOT / "scripts/gen_protocol.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_generated_modules_match_the_installed_openai_package() -> None:
    gen = _generator()
    for path, text in gen.sources().items():  # type: ignore[attr-defined]
        assert path.read_text() == gen.formatted(path, text), (  # type: ignore[attr-defined]
            f"{path.name} is stale: run scripts/gen_protocol.py"
        )


def test_deprecations_are_read_from_the_package_docstrings() -> None:
    from rtedge.protocol import catalog

    assert catalog.DEPRECATED_REALTIME_MODELS["gpt-realtime"] == "2027-01-20"
    assert catalog.DEPRECATED_TRANSCRIPTION_MODELS["gpt-4o-mini-transcribe"] == "2027-02-26"
    assert "gpt-realtime-2" in catalog.REALTIME_MODELS
    assert "gpt-realtime-2" not in catalog.DEPRECATED_REALTIME_MODELS


def test_the_shipped_defaults_are_not_deprecated() -> None:
    from rtedge.peer.config import PeerConfig
    from rtedge.protocol import catalog
    from rtedge.realtime.session_shape import TRANSCRIBE_MODEL
    from rtedge.settings import RealtimeSettings

    for model in (RealtimeSettings().model, PeerConfig().default_model):
        assert model in catalog.REALTIME_MODELS and model not in catalog.DEPRECATED_REALTIME_MODELS
    assert TRANSCRIBE_MODEL in catalog.TRANSCRIPTION_MODELS
    assert TRANSCRIBE_MODEL not in catalog.DEPRECATED_TRANSCRIPTION_MODELS


def test_daemon_and_peer_import_without_openai() -> None:
    """Everything the daemon and the peer load at start, in a fresh interpreter: ``openai`` is
    never imported (it costs about 1 s and 37 MB on a Pi, and is a dev-only dependency)."""
    code = (
        "import sys\n"
        "import rtedge.app, rtedge.cli, rtedge.peer.server, rtedge.peer.session\n"
        "import rtedge.peer.live_http, rtedge.live.call, rtedge.live.conversation\n"
        "bad = sorted(m for m in sys.modules if m == 'openai' or m.startswith('openai.'))\n"
        "assert not bad, bad\n"
        "print('ok')\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-2000:]
