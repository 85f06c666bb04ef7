"""A missing or failing display is reported in State and retried; it never raises into the
caller, and nothing blocks the audio side (the clock/level/onset callbacks keep being served)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from rtedge.display.pipeline import DisplayPipeline, ShownFrame
from rtedge.settings import DisplaySettings
from rtedge.state import State
from tests.display.helpers import AudioClock, make_fb, numbered_jpeg
from tests.poll import until


async def test_missing_framebuffer_reported_then_recovered(tmp_path: Path) -> None:
    ac = AudioClock()
    state = State()
    shown: list[ShownFrame] = []
    device = tmp_path / "fb0"
    sysfs = tmp_path / "sys" / "fb0"  # where make_fb puts the geometry
    settings = DisplaySettings(backend="fbdev", fbdev=device, sysfs=sysfs, local_avatar=False)
    p = DisplayPipeline(
        settings,
        state,
        clock=ac.clock,
        level=ac.level,
        onset=ac.onset,
        on_shown=shown.append,
        retry_initial_s=0.05,
        retry_max_s=0.1,
        anchor_timeout_s=0.1,
    )
    await p.start()  # no device, no geometry: must not raise
    await until(lambda: "display" in state.devices)
    assert not state.devices["display"].ok
    assert "virtual_size" in state.devices["display"].detail
    assert any("display unavailable" in s for s in state.problems())
    p.on_image_delta(numbered_jpeg(1), "r")
    await until(lambda: p.stats.dropped["service.display_down"] == 1)

    # The loop stays responsive while the sink retries: a timer fires on time.
    t = asyncio.get_running_loop().time()
    await asyncio.sleep(0.05)
    assert asyncio.get_running_loop().time() - t < 0.08

    fb = make_fb(tmp_path, 64, 48, 16)  # the display appears
    assert (fb.device, fb.sysfs) == (device, sysfs)
    await until(lambda: state.devices["display"].ok, within=2.0)
    assert "64x48 16bpp" in state.devices["display"].detail
    assert not any("display" in s for s in state.problems())
    p.on_image_delta(numbered_jpeg(2), "r2")
    await until(lambda: len(shown) == 1)
    await p.stop()


async def test_device_vanishing_is_noticed_and_reopened(tmp_path: Path) -> None:
    ac = AudioClock()
    state = State()
    fb = make_fb(tmp_path, 64, 48, 32)
    p = DisplayPipeline(
        fb.settings(local_avatar=False),
        state,
        clock=ac.clock,
        level=ac.level,
        onset=ac.onset,
        retry_initial_s=0.05,
    )
    assert p._presenter is None
    await p.start()
    assert p._presenter is not None
    p._presenter.check_interval_s = 0.05
    await until(lambda: "display" in state.devices and state.devices["display"].ok)
    fb.device.unlink()
    await until(lambda: not state.devices["display"].ok)
    detail = state.devices["display"].detail
    assert "gone" in detail or "No such file" in detail  # the check, or already the retry
    make_fb(tmp_path, 80, 48, 32)  # comes back with another mode
    await until(lambda: state.devices["display"].ok)
    assert "80x48" in state.devices["display"].detail
    await p.stop()
