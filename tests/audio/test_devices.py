"""``rtedge devices`` / ``rtedge check`` helpers against real ALSA configuration."""

from __future__ import annotations

import asyncio

from rtedge.audio.devices import list_cards, list_pcms, probe
from rtedge.settings import AudioSettings
from tests.audio.alsa_rig import AlsaRig


def test_list_pcms_shows_configured_devices(rig: AlsaRig) -> None:
    rig.write_conf()
    names = list_pcms()
    assert "rtmic" in names and "rtspk" in names
    assert isinstance(list_cards(), list)  # no sound card on this machine: an empty list


async def test_probe_reports_ok_and_errors(rig: AlsaRig) -> None:
    rig.write_conf()
    feeder, _ = rig.make_mic()
    feeder.start()
    rig.make_speaker()
    try:
        good = AudioSettings(capture_device="rtmic", playback_device="rtspk")
        result = await asyncio.to_thread(probe, good)
        assert result["capture"].startswith("ok: rtmic, 48000 Hz, 1 ch")
        assert result["playback"].startswith("ok: rtspk, 48000 Hz, 2 ch")
        bad = AudioSettings(capture_device="rtbad", playback_device="no_such_pcm")
        result = await asyncio.to_thread(probe, bad)
        assert result["capture"].startswith("error: rtbad")
        assert "No such file" in result["capture"]
        assert result["playback"].startswith("error: no_such_pcm")
    finally:
        feeder.stop()
