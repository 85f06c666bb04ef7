from __future__ import annotations

import logging

import pytest


@pytest.fixture(autouse=True)
def _quiet_av() -> None:
    # swscale warns about yuvj (JPEG range) input on every new context; it is expected here.
    logging.getLogger("libav").setLevel(logging.ERROR)
