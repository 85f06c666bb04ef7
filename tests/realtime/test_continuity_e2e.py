"""The conversation survives rotation and reconnects, and forgets on cue: ``rtedge run`` against
``rtedge peer`` (both real processes, real WebRTC on loopback, ALSA file devices, push-to-talk
over HTTP). The peer records what each call was seeded with and its replies recall the seeded
history, so a seeded session is told from a blank one by what the daemon hears."""

from __future__ import annotations

from typing import Any

from tests.e2e import DaemonFactory, PeerFactory, last_user_words, seeded_call, service
from tests.support import (
    Daemon,
    http,
    peer_args,
    tone,
    wait_for,
)

RECALL = "Before, you asked"


def turn(daemon: Daemon, seconds: float) -> str:
    """One push-to-talk turn; returns the reply's transcript as the daemon got it."""
    before = daemon.status()["events_in"].get("response.done", 0)
    daemon.say(tone(seconds))
    try:
        wait_for(
            lambda: daemon.status()["events_in"].get("response.done", 0) > before,
            20,
            "reply done",
        )
    except AssertionError as exc:  # what the daemon did instead (seen once, not reproduced)
        raise AssertionError(f"{exc}\n{daemon.log()[-4000:]}") from None
    daemon.wait_turn("idle", 30)
    return str(daemon.status()["transcript_assistant"])


def test_rotation_carries_the_conversation(
    profile: str, peer_factory: PeerFactory, daemon_factory: DaemonFactory
) -> None:
    peer, daemon = service(
        profile, peer_factory, daemon_factory, {"realtime": {"rotate_after_s": 4}}
    )
    first_reply = turn(daemon, 0.6)
    assert RECALL not in first_reply, first_reply  # the first call was blank
    turn(daemon, 1.2)
    # a rotation after both turns: the new call is seeded with them, user words included
    call = wait_for(lambda: seeded_call(peer, 4), 30, "a call seeded with both turns")
    assert call["seeded_items"][:4] == ["user", "assistant", "user", "assistant"]
    assert "session rotated (make-before-break)" in daemon.log()
    history = daemon.status()["history"]
    assert history["items"] == 4 and history["newest_age_s"] is not None
    before = last_user_words(daemon)
    assert before.startswith("[1.") and before.endswith(" s of audio]"), before
    reply = turn(daemon, 0.8)
    assert f"{RECALL}: {before}" in reply, reply
    status = daemon.status()
    assert status["reconnects"] == 0 and "session rotated" in daemon.log()
    # make-before-break: the old call hung up after the new one took over; nothing refused
    assert "service error" not in daemon.log(), daemon.log()[-3000:]


def test_reconnect_after_the_peer_restarts_is_seeded(
    profile: str, peer_factory: PeerFactory, daemon_factory: DaemonFactory
) -> None:
    peer, daemon = service(profile, peer_factory, daemon_factory)
    turn(daemon, 0.6)
    turn(daemon, 1.4)
    first = daemon.status()["call_id"]
    peer.kill()
    wait_for(lambda: daemon.healthz()[0] == 503, 10, "healthz to report the loss")
    peer2 = peer_factory(*peer_args(profile), port=peer.port)
    daemon.wait_healthy(20)
    assert daemon.status()["call_id"] != first
    call = wait_for(lambda: seeded_call(peer2, 4), 10, "the rebuilt call seeded")
    assert call["seeded_items"] == ["user", "assistant", "user", "assistant"]
    before = last_user_words(daemon)
    reply = turn(daemon, 0.8)
    assert f"{RECALL}: {before}" in reply, reply


def test_forget_after_idle_starts_the_next_call_empty(
    profile: str, peer_factory: PeerFactory, daemon_factory: DaemonFactory
) -> None:
    peer, daemon = service(
        profile, peer_factory, daemon_factory, {"conversation": {"forget_after_idle_s": 3}}
    )
    first = daemon.status()["call_id"]
    turn(daemon, 0.6)
    assert daemon.status()["history"]["items"] == 2
    wait_for(lambda: daemon.status()["history"]["items"] == 0, 15, "history forgotten")
    # a new session after forgetting: the service's copy of the talk is gone too
    wait_for(lambda: daemon.status()["call_id"] not in (None, first), 15, "a new call")
    call = peer.active_call()
    assert call is not None and call["seeded_items"] == [], call
    reply = turn(daemon, 0.8)
    assert RECALL not in reply, reply
    assert "conversation forgotten (idle)" in daemon.log()


def test_reset_route_is_guarded_and_forgets(
    peer_factory: PeerFactory, daemon_factory: DaemonFactory
) -> None:
    peer, daemon = service("openai", peer_factory, daemon_factory)
    turn(daemon, 0.6)
    url = f"{daemon.url}/conversation/reset"
    code, body = http_with(
        url, {"Origin": "http://evil.example", "Content-Type": "application/json"}
    )
    assert code == 403, body
    code, body = http_with(url, {"Content-Type": "text/plain"})  # a form post, no Origin
    assert code in (403, 415), body
    code, body = http_with(url, {"Host": "rebind.example", "Content-Type": "application/json"})
    assert code in (403, 421), body
    assert daemon.status()["history"]["items"] == 2  # none of those did anything
    code, body = http("POST", url, {})
    assert code == 200 and body == {"forgotten": True, "items": 0}, body
    first = daemon.status()["call_id"]
    wait_for(lambda: daemon.status()["call_id"] not in (None, first), 15, "a new call")
    assert "history" in daemon.status() and "text" in daemon.status()["history"]  # log_transcripts


def http_with(url: str, headers: dict[str, str]) -> tuple[int, Any]:
    import urllib.error
    import urllib.request

    req = urllib.request.Request(url, data=b"{}", method="POST", headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()
