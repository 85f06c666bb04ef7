"""The test run itself, as whoever runs ``scripts/test`` reads it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import xdist

ROOT = Path(__file__).resolve().parents[1]


def run_pytest(sample: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """pytest with the project's configuration on one sample file of its own."""
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "no:cacheprovider",
            "-c",
            str(ROOT / "pyproject.toml"),
        ]
        + ["--rootdir", str(sample.parent), *args, str(sample)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=sample.parent,
    )


def test_a_skip_is_listed_with_its_reason(tmp_path: Path) -> None:
    sample = tmp_path / "test_sample.py"
    sample.write_text(
        "import pytest\n\n"
        "def test_runs():\n    pass\n\n"
        "def test_needs_a_thing():\n    pytest.skip('the thing is not on this machine')\n"
    )
    out = run_pytest(sample, "-q")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "SKIPPED [1] test_sample.py:7: the thing is not on this machine" in out.stdout, (
        out.stdout
    )
    assert "1 passed, 1 skipped" in out.stdout


def test_xdist_groups_run_on_one_worker(tmp_path: Path) -> None:
    """scripts/test relies on ``--dist loadgroup``: the tests of one xdist_group (Chromium, the
    room rig) never run beside each other. With pytest 9.2 and pytest-xdist 3.8.0 the grouping
    silently stopped (the group went into a node-id field pytest no longer reads): this fails
    then, naming the versions, instead of the suite quietly loading the machine twice over."""
    sample = tmp_path / "test_grouped.py"
    sample.write_text(
        "import os\nimport pytest\n\n"
        "@pytest.mark.xdist_group('solo')\n"
        "@pytest.mark.parametrize('i', range(6))\n"
        "def test_grouped(i):\n"
        "    print('WORKER', os.environ['PYTEST_XDIST_WORKER'])\n"
    )
    out = run_pytest(sample, "-v", "-n", "2", "--dist", "loadgroup")
    assert out.returncode == 0, out.stdout + out.stderr
    versions = f"pytest {pytest.__version__}, pytest-xdist {xdist.__version__}"
    ran = [line for line in out.stdout.splitlines() if "PASSED" in line]
    assert len(ran) == 6, out.stdout
    assert all("@solo" in line for line in ran), f"loadgroup does not group ({versions})"
    workers = {line.split("]", 1)[0] for line in ran}
    assert len(workers) == 1, f"one group ran on {sorted(workers)} ({versions})"
