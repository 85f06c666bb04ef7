"""The conversation survives Live's session rotation and a restarted service, and forgets on cue:
``rtedge run`` with ``provider = "live"`` against ``rtedge peer`` (real processes, real WebRTC on
loopback, ALSA file devices, push-to-talk over HTTP). Each new session gets the history in its
create request (``session.input``); the peer records its roles as ``seeded_items`` and its
replies to audio recall the seeded user words, so a seeded session is told from a blank one by
what the daemon hears."""

from __future__ import annotations

from tests.e2e import DaemonFactory, PeerFactory, last_user_words, seeded_call
from tests.live.test_live_e2e import live_service
from tests.support import Daemon, http, scaled, tone, wait_for

RECALL = "Before, you asked"
#: What a session seeded with two turns starts with: the preamble, then the turns.
TWO_TURNS = ["developer", "user", "assistant", "user", "assistant"]


def turn(daemon: Daemon, seconds: float) -> str:
    """One push-to-talk turn, recorded; returns the reply's transcript as the daemon got it."""
    before = daemon.status()["history"]["items"]
    daemon.say(tone(seconds))
    wait_for(lambda: daemon.status()["history"]["items"] > before, 30, "the turn recorded")
    daemon.wait_turn("idle", 30)
    return str(daemon.status()["transcript_assistant"])


def test_rotation_by_expires_at_carries_the_conversation(
    peer_factory: PeerFactory, daemon_factory: DaemonFactory
) -> None:
    # A short cap: the device rotates ahead of expires_at at a quiet moment, again and again.
    peer, daemon = live_service(
        peer_factory, daemon_factory, peer_args=("--max-session-s", str(scaled(20)))
    )
    first = peer.active_call()
    assert first is not None and first["seeded_items"] == [], first  # nothing to carry yet
    first_reply = turn(daemon, 0.6)
    assert first_reply.strip() and RECALL not in first_reply, first_reply
    turn(daemon, 1.2)
    history = daemon.status()["history"]
    assert history["items"] == 4, history  # one user and one assistant message per turn
    assert [e["role"] for e in history["text"]] == TWO_TURNS[1:]
    call = wait_for(lambda: seeded_call(peer, 5), 60, "a session created with both turns")
    assert call["seeded_items"] == TWO_TURNS, call
    assert call["session_id"] != first["session_id"]
    before = last_user_words(daemon)
    assert before.startswith("[1.") and before.endswith(" s of audio]"), before
    daemon.wait_healthy(15)
    reply = turn(daemon, 0.8)
    assert f"{RECALL}: {before}" in reply, reply
    status = daemon.status()
    assert status["reconnects"] == 0, status
    assert status["history"]["items"] == 6  # the third turn, recorded once
    ended = next(c for c in peer.calls() if c["session_id"] == first["session_id"])
    assert ended["live"]["close_reason"] == "close_requested", ended  # rotated, not expired


def test_reconnect_after_the_peer_restarts_is_seeded(
    peer_factory: PeerFactory, daemon_factory: DaemonFactory
) -> None:
    peer, daemon = live_service(peer_factory, daemon_factory)
    turn(daemon, 0.6)
    turn(daemon, 1.4)
    first = daemon.status()["call_id"]
    peer.kill()
    wait_for(lambda: daemon.healthz()[0] == 503, 10, "healthz to report the loss")
    peer2 = peer_factory(port=peer.port)
    daemon.wait_healthy(20)
    assert daemon.status()["call_id"] != first
    call = wait_for(lambda: seeded_call(peer2, 5), 10, "the rebuilt session seeded")
    assert call["seeded_items"] == TWO_TURNS
    before = last_user_words(daemon)
    reply = turn(daemon, 0.8)
    assert f"{RECALL}: {before}" in reply, reply


def test_forget_after_idle_starts_the_next_session_empty(
    peer_factory: PeerFactory, daemon_factory: DaemonFactory
) -> None:
    peer, daemon = live_service(
        peer_factory, daemon_factory, config={"conversation": {"forget_after_idle_s": 3}}
    )
    first = daemon.status()["call_id"]
    turn(daemon, 0.6)
    assert daemon.status()["history"]["items"] == 2
    wait_for(lambda: daemon.status()["history"]["items"] == 0, 15, "history forgotten")
    # a new session after forgetting: the service's copy of the talk is gone too
    wait_for(lambda: daemon.status()["call_id"] not in (None, first), 15, "a new session")
    call = peer.active_call()
    assert call is not None and call["seeded_items"] == [], call
    reply = turn(daemon, 0.8)
    assert reply.strip() and RECALL not in reply, reply
    assert "conversation forgotten (idle)" in daemon.log()


def test_reset_route_starts_the_next_session_empty(
    peer_factory: PeerFactory, daemon_factory: DaemonFactory
) -> None:
    peer, daemon = live_service(peer_factory, daemon_factory)
    turn(daemon, 0.6)
    turn(daemon, 1.0)
    first = daemon.status()["call_id"]
    code, body = http("POST", f"{daemon.url}/conversation/reset", {})
    assert code == 200 and body == {"forgotten": True, "items": 0}, body
    wait_for(lambda: daemon.status()["call_id"] not in (None, first), 15, "a new session")
    call = peer.active_call()
    assert call is not None and call["seeded_items"] == [], call
    reply = turn(daemon, 0.8)
    assert reply.strip() and RECALL not in reply, reply
    assert daemon.status()["history"]["items"] == 2
