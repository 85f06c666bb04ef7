"""GPT-Live delegation end to end: ``rtedge run`` with ``provider = "live"`` against ``rtedge peer``
over real WebRTC and the ALSA file rig. The peer delegates a push-to-talk turn to a device tool
(Responses delegation) or to the device itself (client delegation); the device answers at once
and the turn completes at the speaker, well before the peer would give up waiting."""

from __future__ import annotations

import json
import time

from rtedge.demo import speech_pcm
from rtedge.peer.live_tools import CLIENT_WAIT_S
from tests.live.test_live_e2e import DaemonFactory, PeerFactory, live_call, live_service
from tests.support import Daemon, scaled, turn_states, voiced_seconds, wait_for


def _turn(daemon: Daemon) -> float:
    """One push-to-talk turn answered at the speaker; seconds from release to idle."""
    before = len(turn_states(daemon.log()))
    daemon.say(speech_pcm("Is everything all right with you?"))
    released = time.monotonic()
    daemon.wait_turn("speaking", 20)
    daemon.wait_turn("idle", 30)
    elapsed = time.monotonic() - released
    assert turn_states(daemon.log())[before:][:3] == ["listening", "thinking", "speaking"]
    assert voiced_seconds(daemon.alsa.speaker_pcm()) > 0.5
    return elapsed


def test_responses_delegation_runs_the_device_tool(
    peer_factory: PeerFactory, daemon_factory: DaemonFactory
) -> None:
    peer, daemon = live_service(
        peer_factory,
        daemon_factory,
        peer_args=("--live-delegate", "tool"),
        config={"realtime": {"live": {"tools": ["device_status"]}}},
    )
    elapsed = _turn(daemon)
    call = live_call(peer)
    (entry,) = call["live"]["delegations"]
    assert entry["target"] == "responses" and entry["tool"] == "device_status", entry
    output = json.loads(entry["output"])  # what the device's tool really said about itself
    assert output["connection"] == "connected" and output["provider"] == "live", output
    assert output["reconnects"] == 0 and "call_id" not in output
    sent = call["client_events"]
    i = sent.index("response.item.create")
    assert sent[i + 1] == "response.create", sent
    assert "session.commentary.append" not in sent
    status = daemon.status()
    assert status["delegations"] == {"responses": 1, "tool_calls": 1}, status
    assert "device status tool returned" in status["transcript_assistant"], status
    assert elapsed < scaled(CLIENT_WAIT_S), elapsed
    assert status["reconnects"] == 0


def test_client_delegation_is_answered_by_the_device_at_once(
    peer_factory: PeerFactory, daemon_factory: DaemonFactory
) -> None:
    peer, daemon = live_service(
        peer_factory, daemon_factory, peer_args=("--live-delegate", "client")
    )
    elapsed = _turn(daemon)
    call = live_call(peer)
    (entry,) = call["live"]["delegations"]
    # The device answered (not the peer's own timeout): commentary carrying the delegation id.
    assert entry["target"] == "client" and entry["answer"] == "commentary", entry
    assert "no backend" in entry["content"]
    assert "session.commentary.append" in call["client_events"]
    assert "response.create" not in call["client_events"]
    wait_for(
        lambda: daemon.status()["delegations"].get("client_answered") == 1, 10, "the ack matched"
    )
    status = daemon.status()
    assert status["delegations"] == {"client": 1, "client_answered": 1}, status
    assert elapsed < scaled(CLIENT_WAIT_S), elapsed
    assert "client delegation" in daemon.log()
    assert status["reconnects"] == 0
