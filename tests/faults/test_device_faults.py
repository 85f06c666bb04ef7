"""Hardware faults on the real daemon: ALSA capture and playback devices vanishing and coming
back (file-plugin devices in a directory that is renamed away, as an unplugged USB device's node
disappears), the framebuffer missing at boot and vanishing later, and a chattering button driven
through gpiozero's mock pins from another thread (as lgpio's thread would on a Pi)."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.audio.alsa_rig import AlsaRig as DirAlsa
from tests.audio.alsa_rig import FifoDrain, MicFeeder
from tests.faults.rig import FaultDaemon
from tests.support import Peer, http, tone, wait_for

PeerFactory = Callable[..., Peer]
FaultDaemonFactory = Callable[..., FaultDaemon]

REOPEN_MAX_S = 1.0  # [audio] reopen_max_s in these tests
#: A device that stops moving audio without an error is failed after this
#: (rtedge.audio.capture, rtedge.audio.playback).
STALL_S = 2.0
#: After the device is back: the reopen delay in progress, then the first period moving.
AUDIO_BOUND_S = REOPEN_MAX_S + 1.5
#: The display's retry schedule (rtedge.display.presenter defaults): 0.5 s doubling to 10 s,
#: +-20 %, and a health check of an open display every 2 s.
DISPLAY_RETRY = (0.5, 10.0, 0.2)
DISPLAY_CHECK_S = 2.0


def display_retry_bound(down_for: float) -> float:
    """The longest the display may wait, once the device is back, after being missing for
    ``down_for`` seconds: the longest retry delay that can be in progress at that moment."""
    initial, maximum, jitter = DISPLAY_RETRY
    elapsed_lo, worst = 0.0, 0.0
    k = 0
    while elapsed_lo <= down_for:
        base = min(maximum, initial * 2**k)
        worst = max(worst, base * (1 + jitter))
        elapsed_lo += base * (1 - jitter)
        k += 1
    return worst


class Devices:
    """Directory-backed file-plugin devices for one daemon: ``rtmic`` (a FIFO fed in real time,
    its copy going to a FIFO whose reader we hold) and ``rtspk`` (a FIFO drained in real time)."""

    def __init__(self, root: Path) -> None:
        root.mkdir()
        self.rig = DirAlsa(root)
        old = os.environ.get("ALSA_CONFIG_PATH")
        self.rig.write_conf(capture_copy=True, speaker_fifo=True)
        if old is None:  # write_conf points this process at it too: undo that
            os.environ.pop("ALSA_CONFIG_PATH", None)
        else:
            os.environ["ALSA_CONFIG_PATH"] = old
        self.parts: list[MicFeeder | FifoDrain] = []
        self.mic: MicFeeder | None = None
        self.mic_copy: FifoDrain | None = None
        self.speaker: FifoDrain | None = None

    def plug_mic(self) -> None:
        feeder, drain = self.rig.make_mic(capture_copy=True)
        assert drain is not None
        self.mic, self.mic_copy = feeder.start(), drain
        self.parts += [feeder, drain]

    def unplug_mic(self) -> None:
        self.rig.vanish_mic()
        assert self.mic_copy is not None and self.mic is not None
        self.mic_copy.close()  # the plugin's writes now fail, as reads from a gone device do
        self.mic.stop()

    def plug_speaker(self) -> None:
        drain = self.rig.make_speaker(fifo=True)
        assert drain is not None
        self.speaker = drain
        self.parts.append(drain)

    def unplug_speaker(self) -> None:
        self.rig.vanish_speaker()
        assert self.speaker is not None
        self.speaker.close()

    def close(self) -> None:
        for part in self.parts:
            if isinstance(part, MicFeeder):
                part.stop()
            else:
                part.close()


@pytest.fixture
def with_devices(
    peer_factory: PeerFactory, fault_daemon: FaultDaemonFactory, tmp_path: Path
) -> Iterator[tuple[Peer, FaultDaemon, Devices]]:
    peer = peer_factory()
    devices = Devices(tmp_path / "alsa")
    daemon = fault_daemon(
        peer.calls_url,
        start=False,
        config={
            "audio": {
                "capture_device": "rtmic",
                "playback_device": "rtspk",
                "reopen_initial_s": 0.2,
                "reopen_max_s": REOPEN_MAX_S,
            }
        },
    )
    daemon.d.env["ALSA_CONFIG_PATH"] = str(devices.rig.conf)
    daemon.d.alsa.start = lambda: None  # type: ignore[method-assign]  # our devices, not its FIFO
    devices.plug_mic()
    devices.plug_speaker()
    daemon.start()
    yield peer, daemon, devices
    devices.close()


def ptt_turn(daemon: FaultDaemon, mic: MicFeeder) -> float:
    """One push-to-talk turn with a tone in the mic; returns the highest mic level seen."""
    daemon.press()
    wait_for(lambda: daemon.status()["turn"] == "listening", 3, "listening")
    pcm = tone(0.8)
    periods = -(-pcm.size // (mic.period_frames * mic.channels))
    start = mic.periods_written
    mic.play(pcm)
    level = 0.0

    def tone_fed() -> bool:  # at the mic's pace, which a loaded machine slows
        nonlocal level
        level = max(level, daemon.status()["mic_level"])
        return mic.periods_written - start > periods + 10  # and 0.2 s past it

    wait_for(tone_fed, 10, "the tone fed")
    daemon.release()
    daemon.wait_turn("speaking", 10)
    daemon.wait_turn("idle", 30)
    return level


def test_capture_device_vanishes_and_returns(
    with_devices: tuple[Peer, FaultDaemon, Devices],
) -> None:
    peer, daemon, devices = with_devices
    assert daemon.watch is not None
    before = daemon.baseline()
    call_id = daemon.call_id()
    t0 = time.monotonic()
    devices.unplug_mic()
    wait_for(lambda: daemon.healthz()[0] == 503, 5, "healthz 503")
    detected = time.monotonic() - t0
    assert detected <= STALL_S + 1.0, detected  # an error at once, or the stall timer
    problems = daemon.healthz()[1]["problems"]
    assert any(p.startswith("capture unavailable") for p in problems), problems
    # Gone for a while (a window, the test's input): the reopen delay grows to its max.
    time.sleep(2 * REOPEN_MAX_S)  # the test's input
    assert daemon.alive() and daemon.call_id() == call_id  # the call does not need the mic
    t_back = time.monotonic()
    devices.plug_mic()
    recovery = wait_for(
        lambda: time.monotonic() - t_back if daemon.healthz()[0] == 200 else None,
        AUDIO_BOUND_S + 5,
        "capture back",
    )
    assert recovery <= AUDIO_BOUND_S, recovery
    assert daemon.call_id() == call_id
    print(f"RECOVERY capture_vanished {recovery:.2f}s after replug (seen in {detected:.2f}s)")
    assert devices.mic is not None
    level = ptt_turn(daemon, devices.mic)
    assert level > 0.05, level  # the tone came through the replugged microphone
    daemon.assert_no_leak(before)


def test_playback_device_vanishes_and_returns(
    with_devices: tuple[Peer, FaultDaemon, Devices],
) -> None:
    peer, daemon, devices = with_devices
    before = daemon.baseline()
    call_id = daemon.call_id()
    t0 = time.monotonic()
    devices.unplug_speaker()
    wait_for(lambda: daemon.healthz()[0] == 503, 5, "healthz 503")
    detected = time.monotonic() - t0
    assert detected <= STALL_S + 1.0, detected
    problems = daemon.healthz()[1]["problems"]
    assert any(p.startswith("playback unavailable") for p in problems), problems
    time.sleep(2 * REOPEN_MAX_S)  # gone for a while, as above
    assert daemon.alive() and daemon.call_id() == call_id  # remote audio is still drained
    t_back = time.monotonic()
    devices.plug_speaker()
    recovery = wait_for(
        lambda: time.monotonic() - t_back if daemon.healthz()[0] == 200 else None,
        AUDIO_BOUND_S + 5,
        "playback back",
    )
    assert recovery <= AUDIO_BOUND_S, recovery
    print(f"RECOVERY playback_vanished {recovery:.2f}s after replug (seen in {detected:.2f}s)")
    assert devices.mic is not None and devices.speaker is not None
    heard = len(devices.speaker.data)
    ptt_turn(daemon, devices.mic)
    assert len(devices.speaker.data) > heard + 48000 * 4 // 2  # the reply reached the speaker
    daemon.assert_no_leak(before)


def test_framebuffer_missing_at_boot_then_vanishing(
    peer_factory: PeerFactory, fault_daemon: FaultDaemonFactory
) -> None:
    peer = peer_factory()
    daemon = fault_daemon(peer.calls_url, start=False, config={"display": {"backend": "fbdev"}})
    # The rig wrote fb0 and fb0-sysfs (1280x720... geometry); the daemon is pointed at paths
    # that do not exist yet: no framebuffer device and no sysfs entry, as on a Pi with no screen.
    present = daemon.dir / "fb0"
    missing = daemon.dir / "fb-missing"
    cfg = daemon.d.config_path.read_text().replace(str(present), str(missing))
    daemon.d.config_path.write_text(cfg)
    t_boot = time.monotonic()
    daemon.start(wait_healthy=False)
    assert daemon.watch is not None
    # Up and supervising; the call comes up; the display is reported, not fatal.
    wait_for(lambda: http("GET", daemon.url + "/readyz")[0] == 200, 20, "ready")
    wait_for(lambda: daemon.status()["connection"] == "connected", 20, "call up")
    code, body = daemon.healthz()
    assert code == 503 and any("display unavailable" in p for p in body["problems"]), body
    time.sleep(1.0)  # down for a while (a window: the test's input)
    down_for = time.monotonic() - t_boot
    t_back = time.monotonic()
    shutil.copytree(daemon.dir / "fb0-sysfs", daemon.dir / "fb-missing-sysfs")
    shutil.copyfile(present, missing)
    bound = display_retry_bound(down_for) + 1.0
    recovery = daemon.watch.wait_new_call(t_back, None, bound + 10)  # any call, healthy
    assert recovery <= bound, (recovery, bound)
    print(f"RECOVERY framebuffer_missing_at_boot {recovery:.2f}s (bound {bound:.1f}s)")
    before = daemon.baseline()
    call_id = daemon.call_id()
    # Now it vanishes (a hot-unplugged screen): seen within a health check of the display.
    t0 = time.monotonic()
    gone = daemon.dir / "fb-gone"
    missing.rename(gone)
    wait_for(lambda: daemon.healthz()[0] == 503, DISPLAY_CHECK_S + 2, "display loss reported")
    assert time.monotonic() - t0 <= DISPLAY_CHECK_S + 1.0
    assert any("display unavailable" in p for p in daemon.healthz()[1]["problems"])
    time.sleep(1.0)  # down for a while (a window: the test's input)
    down_for = time.monotonic() - t0
    t_back = time.monotonic()
    gone.rename(missing)
    bound = display_retry_bound(down_for) + 1.0
    recovery = wait_for(
        lambda: time.monotonic() - t_back if daemon.healthz()[0] == 200 else None,
        bound + 10,
        "display back",
    )
    assert recovery <= bound, (recovery, bound)
    assert daemon.call_id() == call_id
    print(f"RECOVERY framebuffer_vanished {recovery:.2f}s (bound {bound:.1f}s)")
    daemon.assert_no_leak(before)


def client_events(peer: Peer) -> list[str]:
    call = peer.active_call()
    assert call is not None
    return list(call["client_events"])


def test_button_chatter(peer_factory: PeerFactory, fault_daemon: FaultDaemonFactory) -> None:
    peer = peer_factory()
    daemon = fault_daemon(peer.calls_url)
    assert daemon.watch is not None
    before = daemon.baseline()
    call_id = daemon.call_id()
    sent0 = client_events(peer)
    t0 = time.monotonic()
    # 50 presses in one second on the GPIO pin (10 ms down, 10 ms up), then the same over HTTP.
    out = daemon.probe({"op": "gpio", "pin": 17, "edges": [["low", 0.01], ["high", 0.01]] * 50})
    assert out == {"edges": 100}, out
    for _ in range(50):
        daemon.press()
        daemon.release()
    time.sleep(0.5)  # a window for a late edge to act (none may)
    status = daemon.status()
    assert status["turn"] == "idle" and not status["ptt_held"], status
    assert client_events(peer) == sent0, "chatter reached the service"
    assert not daemon.watch.unhealthy_since(t0)
    assert daemon.call_id() == call_id
    # A real press after the chatter is one turn: clear, commit, response.create once each.
    daemon.probe({"op": "gpio", "pin": 17, "edges": [["low", 1.0], ["high", 0]]})
    daemon.wait_turn("speaking", 10)
    daemon.wait_turn("idle", 30)
    new = client_events(peer)[len(sent0) :]
    for name in ("input_audio_buffer.clear", "input_audio_buffer.commit", "response.create"):
        assert new.count(name) == 1, (name, new)
    daemon.assert_no_leak(before)
