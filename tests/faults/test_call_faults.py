"""Faults on a live call, injected by the real peer (``POST /_rtedge/faults``) into the real
daemon: for each, the daemon keeps running, ``/healthz`` says so while it lasts, the call comes
back within the backoff schedule, and nothing (tasks, threads, fds, memory) is left behind."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from rtedge.demo import speech_pcm
from tests.faults.rig import (
    CONNECT_SLACK_S,
    LIVENESS_S,
    WATCH_INTERVAL_S,
    FaultDaemon,
    backoff_window,
)
from tests.support import PROFILES, Peer, daemon_config, http, peer_args, tone, wait_for

PeerFactory = Callable[..., Peer]
FaultDaemonFactory = Callable[..., FaultDaemon]


def warm_up(peer: Peer, daemon: FaultDaemon) -> None:
    """One drop and rebuild before the baseline: the first sets up lazily created parts."""
    daemon.settle()
    old = daemon.call_id()
    peer.fault(call="drop_connection")
    assert daemon.watch is not None
    daemon.watch.wait_new_call(time.monotonic() - 0.1, old, 15)


def one_turn(daemon: FaultDaemon, seconds: float = 0.8) -> None:
    daemon.say(tone(seconds))
    daemon.wait_turn("speaking", 10)
    daemon.wait_turn("idle", 30)


@pytest.fixture
def live(peer_factory: PeerFactory, fault_daemon: FaultDaemonFactory) -> tuple[Peer, FaultDaemon]:
    peer = peer_factory()
    daemon = fault_daemon(peer.calls_url)
    warm_up(peer, daemon)
    return peer, daemon


def rebuilt_after(
    peer: Peer, daemon: FaultDaemon, fault: dict[str, object], bound: float
) -> tuple[float, list[str]]:
    """Apply a call fault, and return (recovery seconds, problems /healthz showed meanwhile)."""
    assert daemon.watch is not None
    old = daemon.call_id()
    t0 = time.monotonic()
    peer.fault(**fault)
    recovery = daemon.watch.wait_new_call(t0, old, bound + 10)
    problems = daemon.watch.problems_since(t0)
    assert daemon.alive()
    assert recovery <= bound, f"recovered in {recovery:.2f}s, bound {bound:.2f}s ({problems})"
    return recovery, problems


def test_drop_connection_rebuilds_within_first_backoff(live: tuple[Peer, FaultDaemon]) -> None:
    peer, daemon = live
    before = daemon.baseline()
    _, hi = backoff_window(1)
    recovery, problems = rebuilt_after(
        peer, daemon, {"call": "drop_connection"}, hi + CONNECT_SLACK_S
    )
    assert problems, "healthz never reported the lost call"
    print(f"RECOVERY drop_connection {recovery:.2f}s problems={problems}")
    d = daemon.assert_no_leak(before)
    print(f"LEAK drop_connection {d}")


def test_data_channel_closed_rebuilds(live: tuple[Peer, FaultDaemon]) -> None:
    peer, daemon = live
    before = daemon.baseline()
    _, hi = backoff_window(1)
    recovery, problems = rebuilt_after(
        peer, daemon, {"call": "close_datachannel"}, hi + CONNECT_SLACK_S
    )
    assert any("data channel closed" in p for p in problems), problems
    print(f"RECOVERY close_datachannel {recovery:.2f}s")
    daemon.assert_no_leak(before)


def test_rtp_stopped_while_connection_stays(live: tuple[Peer, FaultDaemon]) -> None:
    peer, daemon = live
    daemon.settle(2.5)  # the daemon has learnt that the peer streams RTP between replies
    before = daemon.baseline()
    _, hi = backoff_window(1)
    # Detection is the liveness timer, not the connection (it stays up): never before it.
    bound = LIVENESS_S + 2 * WATCH_INTERVAL_S + hi + CONNECT_SLACK_S
    recovery, problems = rebuilt_after(peer, daemon, {"call": "stop_rtp"}, bound)
    assert recovery >= LIVENESS_S - 2 * WATCH_INTERVAL_S, recovery
    assert any("stopped sending audio" in p for p in problems), problems
    print(f"RECOVERY stop_rtp(idle) {recovery:.2f}s")
    daemon.assert_no_leak(before)


def test_rtp_stopped_mid_reply(live: tuple[Peer, FaultDaemon]) -> None:
    peer, daemon = live
    before = daemon.baseline()
    daemon.say(speech_pcm("Tell me a long story about the sea."))
    daemon.wait_turn("speaking", 10)
    _, hi = backoff_window(1)
    bound = LIVENESS_S + 2 * WATCH_INTERVAL_S + hi + CONNECT_SLACK_S
    recovery, problems = rebuilt_after(peer, daemon, {"call": "stop_rtp"}, bound)
    assert recovery >= LIVENESS_S - 2 * WATCH_INTERVAL_S, recovery
    assert any("audio" in p for p in problems), problems
    print(f"RECOVERY stop_rtp(mid-reply) {recovery:.2f}s {problems}")
    daemon.wait_turn("idle", 10)  # the cut reply does not leave the turn stuck
    one_turn(daemon)
    daemon.assert_no_leak(before)


def test_peer_killed_mid_reply(peer_factory: PeerFactory, fault_daemon: FaultDaemonFactory) -> None:
    peer = peer_factory()
    daemon = fault_daemon(peer.calls_url)
    warm_up(peer, daemon)
    before = daemon.baseline()
    assert daemon.watch is not None
    old = daemon.call_id()
    daemon.say(speech_pcm("Tell me a long story about the sea."))
    daemon.wait_turn("speaking", 10)
    t_kill = time.monotonic()
    failed0 = daemon.log().count("event=connect_failed")
    peer.kill()
    # The closed socket is not seen by aiortc: the liveness timer finds the silence.
    wait_for(lambda: daemon.watch.unhealthy_since(t_kill), LIVENESS_S + 3, "healthz 503")
    # Down for a while: four attempts fail and the delay in progress has grown to max_s.
    wait_for(lambda: daemon.log().count("event=connect_failed") >= failed0 + 4, 15, "four attempts")
    assert daemon.alive()
    problems = daemon.watch.problems_since(t_kill)
    assert any("connect failed" in p or "backoff" in p for p in problems), problems
    peer2 = peer_factory(port=peer.port)  # returns once the new peer answers
    t_up = time.monotonic()
    recovery = daemon.watch.wait_new_call(t_up, old, 30)
    _, hi = backoff_window(1, first=10)  # at most one max_s delay in progress
    assert recovery <= hi + CONNECT_SLACK_S, recovery
    print(f"RECOVERY peer_killed_mid_reply {recovery:.2f}s after restart; {problems[-1]}")
    assert daemon.status()["turn"] == "idle"
    one_turn(daemon)
    assert peer2.active_call() is not None
    daemon.assert_no_leak(before)


def test_auth_refused_then_fixed(
    peer_factory: PeerFactory, fault_daemon: FaultDaemonFactory
) -> None:
    auth_backoff = 3.0
    peer = peer_factory()
    daemon = fault_daemon(peer.calls_url, config={"reconnect": {"auth_backoff_s": auth_backoff}})
    warm_up(peer, daemon)
    before = daemon.baseline()
    assert daemon.watch is not None
    old = daemon.call_id()
    peer.fault(http_status=401, count=1000, endpoint="client_secrets")
    peer.fault(http_status=401, count=1000)
    t0 = time.monotonic()
    peer.fault(call="drop_connection")
    wait_for(lambda: daemon.status()["connection"] == "auth_failed", 5, "auth_failed")
    t_refused = time.monotonic()
    refused = peer.stats()["http_refused"]
    time.sleep(auth_backoff * 0.8)  # the window in which no retry may come: the test's input
    assert peer.stats()["http_refused"] == refused, "retried before auth_backoff_s"
    assert any("auth" in p for p in daemon.watch.problems_since(t0))
    http("DELETE", peer.url + "/_rtedge/faults")
    recovery = daemon.watch.wait_new_call(t0, old, auth_backoff + 10)
    since_refusal = t0 + recovery - t_refused
    # The next attempt waits the auth backoff (not the short one), and not much more.
    assert auth_backoff * 0.8 <= since_refusal <= auth_backoff + CONNECT_SLACK_S, since_refusal
    print(f"RECOVERY auth_401 {recovery:.2f}s (auth_backoff_s {auth_backoff})")
    daemon.assert_no_leak(before)


def test_rate_limited_honours_retry_after(live: tuple[Peer, FaultDaemon]) -> None:
    peer, daemon = live
    before = daemon.baseline()
    retry_after = 3.0
    peer.fault(http_status=429, count=1, retry_after=retry_after, endpoint="client_secrets")
    lo, hi = backoff_window(1)
    # drop -> first delay -> 429 -> max(next delay, Retry-After) -> up
    recovery, problems = rebuilt_after(
        peer, daemon, {"call": "drop_connection"}, hi + retry_after + 2 * CONNECT_SLACK_S
    )
    assert recovery >= lo + retry_after, f"Retry-After not honoured: {recovery:.2f}s"
    assert any("429" in p or "rate" in p.lower() for p in problems), problems
    print(f"RECOVERY http_429 {recovery:.2f}s (Retry-After {retry_after})")
    daemon.assert_no_leak(before)


def test_server_errors_back_off_on_schedule(live: tuple[Peer, FaultDaemon]) -> None:
    peer, daemon = live
    before = daemon.baseline()
    refused = peer.stats()["http_refused"]
    peer.fault(http_status=500, count=3, endpoint="client_secrets")
    lo, hi = backoff_window(4)  # the drop's delay, then one after each of three 500s
    recovery, problems = rebuilt_after(
        peer, daemon, {"call": "drop_connection"}, hi + 4 * CONNECT_SLACK_S
    )
    assert recovery >= lo, f"faster than the backoff schedule allows: {recovery:.2f}s < {lo:.2f}s"
    # Three 500s, plus at most the hangup of the dropped call (404: the peer already ended it).
    assert 3 <= peer.stats()["http_refused"] - refused <= 4
    assert http("GET", peer.url + "/_rtedge/faults")[1]["pending"] == []
    assert any("500" in p or "server" in p for p in problems), problems
    print(f"RECOVERY http_500x3 {recovery:.2f}s (schedule {lo:.2f}-{hi:.2f}s)")
    daemon.assert_no_leak(before)


def test_slow_answer_past_connect_timeout(
    peer_factory: PeerFactory, fault_daemon: FaultDaemonFactory
) -> None:
    timeout = 2.0
    peer = peer_factory()
    daemon = fault_daemon(peer.calls_url, config={"realtime": {"connect_timeout_s": timeout}})
    warm_up(peer, daemon)
    before = daemon.baseline()
    peer.fault(slow_answer_s=timeout + 2, count=1)
    lo, hi = backoff_window(2)
    recovery, problems = rebuilt_after(
        peer, daemon, {"call": "drop_connection"}, hi + timeout + 2 * CONNECT_SLACK_S
    )
    assert recovery >= lo + timeout, recovery
    assert any("timed out" in p for p in problems), problems
    print(f"RECOVERY slow_answer {recovery:.2f}s (connect_timeout_s {timeout})")
    time.sleep(2.5)  # the late answer arrives at the peer's side too: nothing may follow it
    daemon.assert_no_leak(before)


def test_malformed_json_is_counted_and_survived(live: tuple[Peer, FaultDaemon]) -> None:
    peer, daemon = live
    before = daemon.baseline()
    assert daemon.watch is not None
    call_id = daemon.call_id()
    bad0 = daemon.status()["events_bad"].get("invalid_json", 0)
    t0 = time.monotonic()
    for _ in range(5):
        peer.fault(call="malformed_event")
    wait_for(lambda: daemon.status()["events_bad"].get("invalid_json", 0) - bad0 == 5, 5, "counted")
    time.sleep(0.5)  # a window in which /healthz must stay 200
    assert not daemon.watch.unhealthy_since(t0), daemon.watch.problems_since(t0)
    assert daemon.call_id() == call_id
    one_turn(daemon)
    daemon.assert_no_leak(before)


def test_unknown_and_oversized_events(live: tuple[Peer, FaultDaemon]) -> None:
    peer, daemon = live
    before = daemon.baseline()
    assert daemon.watch is not None
    call_id = daemon.call_id()
    s0 = daemon.status()
    t0 = time.monotonic()
    for _ in range(3):
        peer.fault(call="unknown_event")
    results = [
        peer.fault(call="oversized_event", bytes=size)["applied"][0]["result"]
        for size in (65_000, 200_000)
    ]
    assert all(r.startswith("sent") for r in results), results
    wait_for(
        lambda: (
            daemon.status()["events_bad"].get("unknown_type", 0)
            - s0["events_bad"].get("unknown_type", 0)
            == 3
        ),
        5,
        "unknown events counted",
    )
    wait_for(
        lambda: sum(daemon.status()["events_bad"].values()) - sum(s0["events_bad"].values()) >= 5,
        5,
        "oversized events handled",
    )
    time.sleep(0.5)  # a window in which /healthz must stay 200
    assert not daemon.watch.unhealthy_since(t0), daemon.watch.problems_since(t0)
    assert daemon.call_id() == call_id
    print(f"EVENTS_BAD {daemon.status()['events_bad']}")
    one_turn(daemon)
    daemon.assert_no_leak(before)


def test_event_storm_1000_per_second(live: tuple[Peer, FaultDaemon]) -> None:
    peer, daemon = live
    before = daemon.baseline()
    assert daemon.watch is not None
    call_id = daemon.call_id()
    n0 = daemon.status()["events_in"].get("rate_limits.updated", 0)
    t0 = time.monotonic()
    peer.fault(call="event_storm", rate=1000, seconds=3)
    wait_for(
        lambda: daemon.status()["events_in"].get("rate_limits.updated", 0) - n0 >= 3000,
        15,
        "all 3000 storm events received",
    )
    storm = daemon.watch.since(t0)
    gaps = [b[0] - a[0] for a, b in zip(storm, storm[1:], strict=False)]
    # /healthz kept answering during the storm: the loop was never blocked for long.
    assert storm and max(gaps) < 1.0, max(gaps, default=None)
    assert not daemon.watch.unhealthy_since(t0), daemon.watch.problems_since(t0)
    assert daemon.call_id() == call_id
    print(f"STORM healthz max gap {max(gaps) * 1000:.0f} ms over {len(storm)} polls")
    one_turn(daemon)
    daemon.assert_no_leak(before)


def test_session_expired_event_rebuilds_at_once(live: tuple[Peer, FaultDaemon]) -> None:
    peer, daemon = live
    before = daemon.baseline()
    # No backoff: straight to a new call.
    reconnects = daemon.status()["reconnects"]
    recovery, problems = rebuilt_after(peer, daemon, {"call": "session_expired"}, CONNECT_SLACK_S)
    # The outage can be shorter than the 50 ms health poll: the daemon's own record instead.
    assert daemon.status()["reconnects"] == reconnects + 1
    assert "session expired; rebuilding now" in daemon.log()
    assert daemon.status()["events_bad"].get("error:session_expired") == 1
    print(f"RECOVERY session_expired {recovery:.2f}s")
    one_turn(daemon)
    daemon.assert_no_leak(before)


def test_session_cap_of_the_service(
    peer_factory: PeerFactory, fault_daemon: FaultDaemonFactory
) -> None:
    """The peer's own cap (``--max-session-s``) ends the session; the daemon, whose rotation is
    set later than the cap, rebuilds at once each time."""
    cap = 5.0
    peer = peer_factory("--max-session-s", str(cap))
    daemon = fault_daemon(peer.calls_url)
    assert daemon.watch is not None
    before = daemon.baseline()
    first = daemon.call_id()
    t0 = time.monotonic()
    daemon.watch.wait_new_call(t0, first, cap + 10)
    log = daemon.watch.since(t0)
    last_old = max(t for t, code, body in log if code == 200 and body.get("call_id") == first)
    first_new = min(
        t
        for t, code, body in log
        if code == 200 and t > last_old and body.get("call_id") not in (None, first)
    )
    outage = first_new - last_old  # no backoff: only the set-up of the new call
    assert outage <= CONNECT_SLACK_S, outage
    assert "session expired; rebuilding now" in daemon.log()  # not the liveness timer
    assert daemon.status()["reconnects"] >= 1
    print(f"RECOVERY session_cap outage {outage:.2f}s")
    daemon.assert_no_leak(before, rss_mb=8.0)


def test_sigterm_during_a_reply(
    peer_factory: PeerFactory, fault_daemon: FaultDaemonFactory
) -> None:
    peer = peer_factory()
    daemon = fault_daemon(peer.calls_url)
    call_id = daemon.call_id()
    daemon.say(speech_pcm("Tell me a long story about the sea."))
    daemon.wait_turn("speaking", 10)
    code, seconds = daemon.stop()
    assert code == 0, daemon.log()[-2000:]
    assert seconds < 5.0, seconds
    # The call was hung up, not left to time out on the service.
    wait_for(
        lambda: not any(c["call_id"] == call_id and c["active"] for c in peer.calls()),
        3,
        "call ended at the peer",
    )
    assert "Traceback" not in daemon.log()
    print(f"SIGTERM exit {code} in {seconds:.2f}s")


@pytest.mark.parametrize("profile", PROFILES)
def test_service_gone_while_idle_and_silent(
    profile: str, peer_factory: PeerFactory, fault_daemon: FaultDaemonFactory
) -> None:
    """Regression: a service silent between replies (OpenAI sends no RTP then) that vanished
    was noticed only when aioice's consent checks expired (6 x 5 s): /healthz said 200 for
    ~35 s; then, with 1 s checks counted as misses, after 1.5 x ``liveness_timeout_s`` (each
    miss cost its interval plus a 0.5 s timeout). Consent now expires by the clock: seen within
    ``liveness_timeout_s`` + 0.5 s (issue 13)."""
    peer = peer_factory(*peer_args(profile))
    daemon = fault_daemon(peer.calls_url, config=daemon_config(profile))
    assert daemon.watch is not None
    if profile == "openai":
        # Like OpenAI between replies: no RTP from the service; the call is up and healthy.
        peer.fault(call="stop_rtp")
    else:
        one_turn(daemon)  # a minimal server is silent between replies by itself
    time.sleep(LIVENESS_S)  # silent for a liveness timeout and still healthy: the input
    assert daemon.healthz()[0] == 200
    t_kill = time.monotonic()
    peer.kill()  # the service (or the route to it) is gone
    wait_for(
        lambda: daemon.watch.unhealthy_since(t_kill),
        LIVENESS_S + 2 * WATCH_INTERVAL_S + CONNECT_SLACK_S,
        "healthz to report the vanished service",
    )
    seen = next(t for t, code, _ in daemon.watch.since(t_kill) if code != 200) - t_kill
    print(f"RECOVERY silent_service_gone seen {seen:.2f}s {daemon.watch.problems_since(t_kill)}")
    assert seen <= LIVENESS_S + 0.5, seen
