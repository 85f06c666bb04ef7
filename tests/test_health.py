"""The health endpoint's push-to-talk routes as a client meets them: a real daemon and peer."""

from __future__ import annotations

from collections.abc import Callable

from tests.support import Daemon, Peer, http, wait_for


def test_press_and_release_answer_with_what_they_did(
    peer_factory: Callable[..., Peer], daemon_factory: Callable[..., Daemon]
) -> None:
    peer = peer_factory()
    daemon = daemon_factory(peer.calls_url)
    # A press counts once held min_press_ms (100 ms): the answer says when, not the old turn.
    code, body = http("POST", f"{daemon.url}/ptt/press")
    assert (code, body) == (200, {"ptt": "pressed", "counts_after_ms": 100})
    wait_for(lambda: daemon.status()["turn"] == "listening", 5, "the press to count")
    # The release answers with the turn it led to: the question goes to the service.
    code, body = http("POST", f"{daemon.url}/ptt/release")
    assert (code, body) == (200, {"ptt": "released", "turn": "thinking"})
    daemon.wait_turn("idle", 30)
    # A tap is ignored, and the release says so.
    http("POST", f"{daemon.url}/ptt/press")
    code, body = http("POST", f"{daemon.url}/ptt/release")
    assert code == 200
    assert body == {
        "ptt": "released",
        "turn": "idle",
        "ignored": "held less than min_press_ms (100 ms)",
    }
