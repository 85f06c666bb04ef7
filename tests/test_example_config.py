"""config/rtedge.toml is what scripts/gen_example_config.py makes of the settings today."""

from __future__ import annotations

import re
import runpy
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_example_config_matches_the_settings() -> None:
    script = runpy.run_path(str(ROOT / "scripts" / "gen_example_config.py"))
    expected = script["render"]()
    shipped = (ROOT / "config" / "rtedge.toml").read_text()
    assert shipped == expected, (
        "config/rtedge.toml drifted from the settings: run "
        ".venv/bin/python scripts/gen_example_config.py > config/rtedge.toml"
    )


def test_example_config_is_valid_toml_with_every_section() -> None:
    text = (ROOT / "config" / "rtedge.toml").read_text()
    # Every commented-out key line, uncommented under its table, parses as TOML.
    keys = [
        line.removeprefix("# ").split("  # unset")[0]
        for line in text.splitlines()
        if line.startswith("[") or re.match(r"# \w+ = ", line)
    ]
    parsed = tomllib.loads("\n".join(keys))
    assert {"realtime", "audio", "ptt", "health", "wake"} <= parsed.keys()
    assert parsed["realtime"]["live"]["tools"] == []
