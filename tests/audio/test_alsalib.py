"""alsa-lib's own stderr lines are silenced (a missing device would flood the journal)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.support import scaled

SCRIPT = """
import alsaaudio, sys
quiet = sys.argv[1] == "quiet"
if quiet:
    from rtedge.audio.alsalib import silence_alsa_lib_errors
    assert silence_alsa_lib_errors()
try:
    alsaaudio.PCM(alsaaudio.PCM_CAPTURE, device="rtedge_no_such_pcm")
except alsaaudio.ALSAAudioError as exc:
    print("error:", exc)
"""


def run(mode: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    conf = tmp_path / "asound.conf"
    conf.write_text("ctl.!default { type null }\n")
    return subprocess.run(
        [sys.executable, "-c", SCRIPT, mode],
        capture_output=True,
        text=True,
        env={"ALSA_CONFIG_PATH": str(conf), "PYTHONPATH": str(Path(__file__).parents[2])},
        timeout=scaled(30),
    )


def test_alsa_lib_noise_is_silenced_and_the_error_still_raised(tmp_path: Path) -> None:
    loud = run("loud", tmp_path)
    assert "ALSA lib" in loud.stderr  # what an unquieted process prints
    quiet = run("quiet", tmp_path)
    assert quiet.returncode == 0, quiet.stderr
    assert "ALSA lib" not in quiet.stderr
    assert "error:" in quiet.stdout  # our own code still sees the failure
