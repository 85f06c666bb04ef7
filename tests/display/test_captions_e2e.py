"""Captions end to end: a push-to-talk turn (mock GPIO pin, real ALSA file mic and speaker) with
``rtedge peer`` over real WebRTC; the peer speaks a known sentence with its transcript deltas a
second ahead of the audio (as services do). Checked in the framebuffer file and the speaker file:
the band holds exactly the pixels of the same caption rendered alone, and the words appear no
earlier than the speaker plays them; against the peer as OpenAI and as a minimal server that
sends none of the optional events (no output_audio_buffer.*: the turn comes from the speaker's
own level). Leaves ``framebuffer.png`` in ``tests/artifacts/kiosk/``."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("rtedge.peer.server", reason="needs the local peer (rtedge peer)")

from rtedge.app import Appliance  # noqa: E402
from rtedge.caption_settings import DEJAVU_SANS  # noqa: E402
from rtedge.display.caption_layer import DrawnCaption  # noqa: E402
from rtedge.display.caption_render import CaptionRenderer  # noqa: E402
from rtedge.display.captions import spoken_weight  # noqa: E402
from rtedge.state import Turn  # noqa: E402
from tests.audio.alsa_rig import feed_mic, sine  # noqa: E402
from tests.display.helpers import encode_png, make_fb  # noqa: E402
from tests.display.kiosk_rig import (  # noqa: E402
    PIN,
    RATE,
    REPLY,
    artifacts_dir,
    kiosk_rig,
    reply_span,
    running,
    voiced_blocks_until,
)
from tests.poll import until  # noqa: E402
from tests.support import PROFILES, free_port  # noqa: E402

W, H = 640, 480
FONT = 28


@pytest.mark.parametrize("profile", PROFILES)
async def test_caption_pixels_follow_the_voice_after_a_push_to_talk_turn(
    tmp_path: Path, profile: str
) -> None:
    async with kiosk_rig(tmp_path, profile) as rig:
        fb = make_fb(tmp_path, W, H, 32)
        display = {
            "backend": "fbdev",
            "fbdev": str(fb.device),
            "sysfs": str(fb.sysfs),
            "captions": True,
            "caption_font_size": FONT,
            "caption_lines": 2,
        }
        settings = rig.settings(free_port(), display=display)
        app = Appliance(settings)
        assert app.display is not None and app.display.captions is not None
        drawn: list[DrawnCaption] = []
        app.display.captions.on_drawn = drawn.append
        async with running(settings, app):
            await until(lambda: drawn and drawn[-1].view.indicator.name == "idle", within=10)
            mark = rig.speaker().size  # the speaker's clock before the turn, in samples
            pin: Any = rig.pins.pin(PIN)
            pin.drive_low()
            await until(lambda: app.state.turn is Turn.LISTENING, within=5)
            await feed_mic(rig.feeder, sine(300, 0.8, RATE, 0.3))  # held while speaking
            await asyncio.sleep(0.2)  # and a moment past it: the test's input
            pin.drive_high()
            await until(lambda: app.state.turn is Turn.SPEAKING, within=15)
            await until(lambda: app.state.turn is Turn.IDLE, within=20)
            # What State holds at the end is what the screen ends with: all of the reply, or
            # with the minimal server (its own VAD answers too, and the daemon cancels the
            # stale reply) the part of it that was kept.
            final = app.state.transcript_assistant
            assert final and REPLY.startswith(final), final
            await until(lambda: drawn[-1].view.assistant == final, within=10)

            renderer = CaptionRenderer(W, font_path=DEJAVU_SANS, font_size=FONT, lines=2)

            def band_matches() -> bool:
                view = drawn[-1].view
                alone = renderer.render(view)
                band = fb.rgb()[H - alone.shape[0] :]
                return view.assistant == final and bool((band == alone).all())

            await until(band_matches, within=5)
            name = "framebuffer.png" if profile == "openai" else f"framebuffer-{profile}.png"
            shot = artifacts_dir("kiosk") / name
            encode_png(fb.rgb().astype(np.uint8), shot)
            print(f"\nframebuffer screenshot: {shot}")

        speaker = rig.speaker()
        first, _, total_voiced = reply_span(speaker, mark)
        assert first >= 0 and total_voiced > 50, "no reply at the speaker"
        onset = mark + first * (RATE // 100)
        stages = [d for d in drawn if d.view.assistant]
        assert stages[0].audio_clock * RATE >= onset, "words shown before the reply was heard"
        assert all(REPLY.startswith(d.view.assistant) for d in stages)
        partial = {d.view.assistant for d in stages if d.view.assistant != final}
        assert len(partial) >= 3, f"not progressive: {sorted(partial)}"
        if profile != "openai":
            return  # two replies overlapped at the speaker: the share test below needs one
        total = spoken_weight(REPLY)
        report = []
        for d in stages:
            shown = spoken_weight(d.view.assistant) / total
            played = voiced_blocks_until(speaker, mark, int(d.audio_clock * RATE)) / total_voiced
            report.append(f"{shown:.2f}/{played:.2f}")
            # Speech is not letter-uniform: a word may come a little before its share of voice,
            # never a fifth of the sentence ahead.
            assert shown <= played + 0.2, f"caption ahead of the voice: {report}"
        print("caption shown/voice played:", " ".join(report))
