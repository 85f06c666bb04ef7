"""The daemon's session end to end: ``rtedge run`` against ``rtedge peer``, both real processes,
over real WebRTC on loopback, with ALSA file devices and push-to-talk over HTTP."""

from __future__ import annotations

import time
import urllib.request
from typing import Any

import numpy as np

from rtedge.demo import speech_pcm
from tests.e2e import DaemonFactory, PeerFactory, service
from tests.support import (
    Daemon,
    Peer,
    http,
    peer_args,
    scaled,
    tone,
    turn_states,
    voiced_seconds,
    wait_for,
)


def client_events(peer: Peer) -> list[str]:
    call = peer.active_call()
    assert call is not None
    return list(call["client_events"])


def replies(peer: Peer) -> list[dict[str, Any]]:
    call = peer.active_call()
    assert call is not None
    return list(call["responses"])


def one_reply_per_press(daemon: Daemon, peer: Peer, presses: int) -> None:
    """Each press got exactly one reply that played: a service's own extra replies were
    cancelled, and what reached the speaker is no more than the replies that completed."""
    done = [r for r in replies(peer) if r["status"] == "completed"]
    assert len(done) == presses, replies(peer)
    played = voiced_seconds(daemon.alsa.speaker_pcm())
    assert played <= sum(r["audio_ms"] for r in done) / 1000 + 0.3, (played, replies(peer))


def test_push_to_talk_turn_over_http(
    profile: str, peer_factory: PeerFactory, daemon_factory: DaemonFactory
) -> None:
    peer, daemon = service(profile, peer_factory, daemon_factory)
    for n in (1, 2):
        before = len(turn_states(daemon.log()))
        daemon.say(speech_pcm("What is the weather like today?"))
        daemon.wait_turn("speaking", 10)
        daemon.wait_turn("idle", 30)
        # every reply: idle -> listening -> thinking -> speaking -> idle, nothing else
        wait_for(lambda b=before: turn_states(daemon.log())[b:][-1:] == ["idle"], 5, "idle logged")
        states = turn_states(daemon.log())[before:]
        assert states == ["listening", "thinking", "speaking", "idle"], states
        time.sleep(1.5)  # room for a reply the service starts on its own
        one_reply_per_press(daemon, peer, n)
    status = daemon.status()
    assert status["transcript_assistant"].strip(), status
    events = status["events_in"]
    common = ("session.created", "response.created", "response.done")
    openai_only = ("output_audio_buffer.started", "output_audio_buffer.stopped")
    for name in common + ("response.output_audio_transcript.done",):
        assert events.get(name), (name, events)
    for name in openai_only:
        assert bool(events.get(name)) == (profile == "openai"), (name, events)
    sent = client_events(peer)
    # PTT recipe: turn detection off, clear on press, commit + response.create on release.
    assert sent[0] == "session.update"
    log = daemon.log()
    if profile == "openai":
        assert sent.index("input_audio_buffer.clear") < sent.index("input_audio_buffer.commit")
        assert sent.index("input_audio_buffer.commit") < sent.index("response.create")
    else:
        # A service with its own VAD may answer before our commit goes out: then we send
        # neither commit nor response.create for that press (one reply, not two).
        asked = sent.count("response.create")
        taken = log.count("the service answered the turn itself")
        assert asked + taken == 2, (sent, taken)
    assert voiced_seconds(daemon.alsa.speaker_pcm()) > 0.5
    assert "assistant:" in log  # transcript logged
    # a refused input_audio_buffer.clear (minimal) is expected, not a fault to log
    assert "service error" not in log, log[-3000:]
    assert daemon.status()["reconnects"] == 0


def test_barge_in_cancels_and_silences(
    profile: str, peer_factory: PeerFactory, daemon_factory: DaemonFactory
) -> None:
    # A press counts after min_press_ms; with 0 the cut itself is measured from the HTTP press.
    peer, daemon = service(profile, peer_factory, daemon_factory, {"ptt": {"min_press_ms": 0}})
    daemon.say(speech_pcm("Please tell me a very long story about the sea and the mountains."))
    daemon.wait_turn("speaking", 10)
    time.sleep(0.5)  # into the reply (not scaled: a slower run must still press mid-reply)
    daemon.press()  # answered once the press has flushed (min_press_ms 0)
    # Measured from the answer, not from before the request: on a loaded machine the request
    # itself can take longer than a period, and the reply plays on until the press arrives.
    before = daemon.alsa.speaker_pcm().size
    wait_for(lambda: daemon.status()["turn"] == "listening", 2, "barge-in")
    time.sleep(scaled(1.0))  # a window in which nothing voiced may reach the speaker
    after = daemon.alsa.speaker_pcm()
    # After the flush nothing voiced reaches the speaker: at most the one period in flight.
    tail = after[before + 48000 // 25 :]
    assert voiced_seconds(tail) <= scaled(0.04), voiced_seconds(tail)
    sent = client_events(peer)
    assert "response.cancel" in sent and "output_audio_buffer.clear" in sent
    daemon.release()
    assert daemon.status()["reconnects"] == 0


def test_peer_killed_and_restarted_reconnects(
    profile: str, peer_factory: PeerFactory, daemon_factory: DaemonFactory
) -> None:
    peer, daemon = service(profile, peer_factory, daemon_factory)
    first = daemon.status()["call_id"]
    # Up long enough for the daemon to learn the peer streams RTP between replies: the test's
    # input (nothing announces what the liveness rule has learnt).
    time.sleep(scaled(2.5))
    peer.kill()
    wait_for(lambda: daemon.healthz()[0] == 503, 10, "healthz to report the loss")
    code, body = daemon.healthz()
    assert body["problems"], body
    peer2 = peer_factory(*peer_args(profile), port=peer.port)
    t0 = time.monotonic()
    daemon.wait_healthy(15)
    status = daemon.status()
    assert status["reconnects"] >= 1
    assert status["call_id"] != first
    assert peer2.active_call() is not None
    assert time.monotonic() - t0 < scaled(10)


def test_call_stays_up_through_idle_after_replies(
    profile: str, peer_factory: PeerFactory, daemon_factory: DaemonFactory
) -> None:
    """Issue 13: against a service silent between replies the call was torn down 10-12 s
    after every reply. Here 30 s of idle (10 x liveness_timeout_s) after two replies; the
    5-minute case runs on a simulated clock (tests/realtime/test_liveness.py)."""
    peer, daemon = service(profile, peer_factory, daemon_factory)
    call_id = daemon.status()["call_id"]
    for _ in range(2):
        daemon.say(tone(1.0))
        daemon.wait_turn("speaking", 10)
        daemon.wait_turn("idle", 30)
    end = time.monotonic() + 30
    while time.monotonic() < end:
        code, body = daemon.healthz()
        assert code == 200, body
        assert daemon.status()["call_id"] == call_id
        time.sleep(0.5)  # 30 s of idle, sampled: the window is the test's input
    assert daemon.status()["reconnects"] == 0
    daemon.say(tone(1.0))
    daemon.wait_turn("speaking", 10)
    daemon.wait_turn("idle", 30)
    assert daemon.status()["call_id"] == call_id
    time.sleep(1.5)  # room for a reply the service starts on its own
    one_reply_per_press(daemon, peer, 3)


def test_auth_failure_backs_off_without_hot_loop(
    peer_factory: PeerFactory, daemon_factory: DaemonFactory
) -> None:
    peer = peer_factory()
    peer.fault(http_status=401, count=1000)
    daemon = daemon_factory(peer.calls_url, wait=False, config={"reconnect": {"auth_backoff_s": 3}})
    wait_for(lambda: daemon.healthz()[1] and "auth" in str(daemon.healthz()[1]), 10, "auth shown")
    attempts_start = peer.stats().get("http_refused", 0)
    time.sleep(2.0)  # a window in which at most one attempt may come
    attempts = peer.stats().get("http_refused", 0) - attempts_start
    assert attempts <= 1, attempts  # one attempt per auth backoff, never a hot loop
    assert daemon.status()["connection"] == "auth_failed"
    http("DELETE", peer.url + "/_rtedge/faults")
    daemon.wait_healthy(10)


def test_rotation_between_turns_keeps_turns(
    profile: str, peer_factory: PeerFactory, daemon_factory: DaemonFactory
) -> None:
    peer, daemon = service(
        profile, peer_factory, daemon_factory, {"realtime": {"rotate_after_s": 4}}
    )
    first = daemon.status()["call_id"]
    daemon.say(tone(1.0))
    daemon.wait_turn("idle", 30)
    wait_for(lambda: daemon.status()["call_id"] not in (None, first), 15, "rotation")
    assert daemon.status()["reconnects"] == 0  # a rotation is not a failure
    # make-before-break: the old call is hung up just behind the switch
    wait_for(lambda: "rotation [event=hangup reason=rotation]" in daemon.log(), 10, "hangup")
    assert "session rotated" in daemon.log()
    # hung up: POST .../hangup; a minimal server has none (404), then DELETE on the Location.
    # The request follows the "hanging up" line, so its outcome is awaited, not read at once.
    post_404 = f"hangup (POST) of {first} answered 404"
    if profile == "minimal":
        wait_for(lambda: post_404 in daemon.log(), 10, "the POST hangup answered 404")
    wait_for(
        lambda: not any(c["active"] for c in peer.calls() if c["call_id"] == first),
        10,
        "the old call ended at the peer",
    )
    assert (post_404 in daemon.log()) == (profile == "minimal"), daemon.log()[-3000:]
    # a failed or refused DELETE would be logged as "hangup (DELETE) ..."
    assert "hangup (DELETE)" not in daemon.log()
    daemon.say(tone(1.0))
    daemon.wait_turn("speaking", 10)
    daemon.wait_turn("idle", 30)


def test_session_expired_rebuilds_at_once(
    peer_factory: PeerFactory, daemon_factory: DaemonFactory
) -> None:
    peer = peer_factory()
    daemon = daemon_factory(peer.calls_url)
    first = daemon.status()["call_id"]
    peer.fault(call="session_expired")
    t0 = time.monotonic()
    wait_for(lambda: daemon.status()["call_id"] not in (None, first), 10, "new session")
    assert time.monotonic() - t0 < scaled(3)
    assert daemon.status()["events_bad"].get("error:session_expired") == 1
    daemon.say(tone(1.0))
    daemon.wait_turn("speaking", 10)
    daemon.wait_turn("idle", 30)


def test_malformed_and_unknown_events_are_counted_and_survived(
    peer_factory: PeerFactory, daemon_factory: DaemonFactory
) -> None:
    peer = peer_factory()
    daemon = daemon_factory(peer.calls_url)
    call_id = daemon.status()["call_id"]
    peer.fault(call="malformed_event")
    peer.fault(call="unknown_event")
    wait_for(
        lambda: (
            daemon.status()["events_bad"].get("invalid_json")
            and daemon.status()["events_bad"].get("unknown_type")
        ),
        5,
        "bad events counted",
    )
    assert daemon.status()["call_id"] == call_id
    assert daemon.healthz()[0] == 200
    assert 0 < daemon.status()["tasks"] < 100
    metrics = urllib.request.urlopen(daemon.url + "/metrics").read().decode()
    assert 'rtedge_events_bad_total{kind="invalid_json"} 1.0' in metrics


def test_secret_never_in_status_metrics_or_log(
    peer_factory: PeerFactory, daemon_factory: DaemonFactory
) -> None:
    peer = peer_factory()
    secret = "sk-live-secret-DO-NOT-LEAK-42"
    peer.fault(http_status=401, count=1)
    daemon = daemon_factory(
        peer.calls_url,
        config={"realtime": {"api_key": secret}, "reconnect": {"auth_backoff_s": 1}},
        wait=False,
    )
    daemon.wait_healthy(20)
    for path in ("/status", "/healthz", "/metrics", "/readyz"):
        body = urllib.request.urlopen(daemon.url + path).read().decode()
        assert secret not in body
    daemon.stop()
    log = daemon.log()
    assert secret not in log
    assert "auth" in log  # the refusal itself was logged, without the key


def test_rtav_shape_end_to_end_with_avatar_frames(
    peer_factory: PeerFactory, daemon_factory: DaemonFactory
) -> None:
    """provider = rtav: multipart signaling, channel ``realtime``, the flat session with
    ``face``/``driving``/``modalities``, and JPEG frames that reach the framebuffer."""
    peer = peer_factory()
    daemon = daemon_factory(
        peer.calls_url,
        config={
            "realtime": {
                "provider": "rtav",
                "voice": "default",
                "session": {"face": "face_demo", "driving": "idle"},
            },
            "display": {"backend": "fbdev"},
        },
    )
    call = peer.active_call()
    assert call is not None and call["label"] == "realtime"
    daemon.say(tone(1.0))
    daemon.wait_turn("speaking", 10)
    daemon.wait_turn("idle", 30)
    status = daemon.status()
    # the flat session, echoed in the GA shape (voice under audio.output), counts as taken
    assert status["events_in"].get("session.updated") and status["session_refused"] == []
    assert status["events_in"].get("response.output_image.delta", 0) > 5
    assert status["frames_shown"] > 5
    fb = np.fromfile(daemon.dir / "fb0", dtype=np.uint8)
    assert fb.any()  # the avatar was drawn into the framebuffer file
