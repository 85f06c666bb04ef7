"""GPT-Live end to end: ``rtedge run`` with ``provider = "live"`` against ``rtedge peer``, both
real processes, over real WebRTC on loopback, with ALSA file devices and push-to-talk over HTTP."""

from __future__ import annotations

import time
from typing import Any

from rtedge.demo import speech_pcm
from tests.e2e import DaemonFactory, PeerFactory
from tests.support import Daemon, Peer, scaled, turn_states, voiced_seconds, wait_for


def live_service(
    peer_factory: PeerFactory,
    daemon_factory: DaemonFactory,
    peer_args: tuple[str, ...] = (),
    config: dict[str, dict[str, Any]] | None = None,
) -> tuple[Peer, Daemon]:
    peer = peer_factory(*peer_args)
    cfg: dict[str, dict[str, Any]] = {"realtime": {"provider": "live"}}
    for section, values in (config or {}).items():
        cfg.setdefault(section, {}).update(values)
    return peer, daemon_factory(f"{peer.url}/v1/live/sessions", config=cfg)


def live_call(peer: Peer) -> dict[str, Any]:
    call = peer.active_call()
    assert call is not None and call["session_id"].startswith("live_"), call
    return call


def test_push_to_talk_turn_is_answered_at_the_speaker(
    peer_factory: PeerFactory, daemon_factory: DaemonFactory
) -> None:
    peer, daemon = live_service(peer_factory, daemon_factory)
    wait_for(lambda: live_call(peer)["live"]["muted"], 10, "input muted while the button is up")
    before = len(turn_states(daemon.log()))
    daemon.say(speech_pcm("What is the weather like today?"))
    daemon.wait_turn("speaking", 15)
    daemon.wait_turn("idle", 30)
    states = turn_states(daemon.log())[before:]
    assert states[:3] == ["listening", "thinking", "speaking"], states
    assert voiced_seconds(daemon.alsa.speaker_pcm()) > 0.5
    call = live_call(peer)
    sent = call["client_events"]
    # mute while up, unmute on press, mute on release; no Realtime turn machinery at all
    assert sent[:3] == [
        "session.input_audio.mute",
        "session.input_audio.unmute",
        "session.input_audio.mute",
    ], sent
    assert not {"response.create", "input_audio_buffer.commit", "session.update"} & set(sent)
    status = daemon.status()
    assert status["transcript_assistant"].strip() and status["transcript_user"].strip(), status
    assert "assistant:" in daemon.log()
    assert status["reconnects"] == 0


def test_barge_in_silences_the_speaker_and_the_peer_yields(
    peer_factory: PeerFactory, daemon_factory: DaemonFactory
) -> None:
    peer, daemon = live_service(peer_factory, daemon_factory, config={"ptt": {"min_press_ms": 0}})
    daemon.say(speech_pcm("Please tell me a very long story about the sea and the mountains."))
    daemon.wait_turn("speaking", 15)
    time.sleep(0.3)  # into the reply (not scaled: a slower run must still press mid-reply)
    daemon.press()  # answered once the press has flushed (min_press_ms 0)
    # Measured from the answer, not from before the request: on a loaded machine the request
    # itself can take longer than a period, and the reply plays on until the press arrives.
    before = daemon.alsa.speaker_pcm().size
    wait_for(lambda: daemon.status()["turn"] == "listening", 2, "barge-in")
    daemon.alsa.feeder.play(speech_pcm("Stop, stop."))
    wait_for(lambda: live_call(peer)["live"]["yields"], 15, "the peer heard the user")
    time.sleep(scaled(0.5))  # a window in which nothing voiced may reach the speaker
    after = daemon.alsa.speaker_pcm()
    # After the flush nothing voiced reaches the speaker: at most the one period in flight.
    tail = after[before + 48000 // 25 :]
    assert voiced_seconds(tail) <= scaled(0.04), voiced_seconds(tail)
    assert live_call(peer)["live"]["yields"][0] <= 100.0
    daemon.release()
    assert daemon.status()["reconnects"] == 0


def test_sigterm_sends_session_close_and_sees_session_closed(
    peer_factory: PeerFactory, daemon_factory: DaemonFactory
) -> None:
    peer, daemon = live_service(peer_factory, daemon_factory)
    session_id = live_call(peer)["session_id"]
    code, _ = daemon.stop()
    assert code == 0, daemon.log()[-2000:]
    ended = next(c for c in peer.calls() if c["session_id"] == session_id)
    assert "session.close" in ended["client_events"], ended
    assert ended["live"]["close_reason"] == "close_requested"
    assert "live session closed: close_requested" in daemon.log()


def test_rotation_by_expires_at_loses_no_turn(
    peer_factory: PeerFactory, daemon_factory: DaemonFactory
) -> None:
    # The peer caps sessions at 20 s; the device rotates 10 s (half the life) before expires_at,
    # when quiet.
    peer, daemon = live_service(
        peer_factory,
        daemon_factory,
        peer_args=("--max-session-s", str(scaled(20))),
    )
    first = live_call(peer)["session_id"]
    daemon.say(speech_pcm("What time is it?"))
    daemon.wait_turn("speaking", 15)
    daemon.wait_turn("idle", 30)
    wait_for(lambda: live_call(peer)["session_id"] != first, 30, "rotated")
    ended = next(c for c in peer.calls() if c["session_id"] == first)
    assert ended["live"]["close_reason"] == "close_requested", ended
    daemon.wait_healthy(15)
    spoken = voiced_seconds(daemon.alsa.speaker_pcm())
    daemon.say(speech_pcm("And the weather?"))
    daemon.wait_turn("speaking", 15)
    daemon.wait_turn("idle", 30)
    assert voiced_seconds(daemon.alsa.speaker_pcm()) > spoken + 0.5
    status = daemon.status()
    assert status["reconnects"] == 0, status


def test_peer_killed_and_restarted_reconnects_within_backoff(
    peer_factory: PeerFactory, daemon_factory: DaemonFactory
) -> None:
    peer, daemon = live_service(peer_factory, daemon_factory)
    first = daemon.status()["call_id"]
    time.sleep(scaled(2.5))  # up a while before the loss: the test's input
    peer.kill()
    wait_for(lambda: daemon.healthz()[0] == 503, 10, "healthz to report the loss")
    peer2 = peer_factory(port=peer.port)
    t0 = time.monotonic()
    daemon.wait_healthy(15)
    status = daemon.status()
    assert status["reconnects"] >= 1 and status["call_id"] != first
    assert live_call(peer2)["session_id"].startswith("live_")
    assert time.monotonic() - t0 < scaled(10)  # reconnect max_s is 2 s in the test daemon


def test_no_session_started_in_time_rebuilds_with_backoff(
    peer_factory: PeerFactory, daemon_factory: DaemonFactory
) -> None:
    peer = peer_factory("--live-start-delay-s", "600")  # answers, but never starts the session
    daemon = daemon_factory(
        f"{peer.url}/v1/live/sessions",
        config={"realtime": {"provider": "live", "live": {"startup_timeout_s": 1.0}}},
        wait=False,
    )
    wait_for(
        lambda: daemon.log().count("no session.started in time") >= 2, 30, "two timed-out starts"
    )
    log = daemon.log()
    assert "next attempt in" in log  # backoff between the attempts
    assert daemon.healthz()[0] == 503
    assert len([c for c in peer.calls() if c["session_id"].startswith("live_")]) >= 2


def test_expired_session_is_rebuilt_at_once(
    peer_factory: PeerFactory, daemon_factory: DaemonFactory
) -> None:
    # The button is held through the cap (never a quiet moment to rotate): the peer ends the
    # session with session.closed "expired".
    peer, daemon = live_service(peer_factory, daemon_factory, peer_args=("--max-session-s", "5"))
    first = live_call(peer)["session_id"]
    daemon.press()
    wait_for(lambda: "live session closed: expired" in daemon.log(), 20, "expired")
    daemon.release()

    def rebuilt() -> bool:
        call = peer.active_call()
        return call is not None and call["session_id"] != first

    wait_for(rebuilt, 15, "a new session")
    daemon.wait_healthy(15)
    ended = next(c for c in peer.calls() if c["session_id"] == first)
    assert ended["live"]["close_reason"] == "expired"
    assert "session expired; rebuilding now" in daemon.log()
