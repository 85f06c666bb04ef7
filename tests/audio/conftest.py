from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.audio.alsa_rig import AlsaRig


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[AlsaRig]:
    old = os.environ.get("ALSA_CONFIG_PATH")
    yield AlsaRig(tmp_path)
    if old is None:
        os.environ.pop("ALSA_CONFIG_PATH", None)
    else:
        os.environ["ALSA_CONFIG_PATH"] = old
