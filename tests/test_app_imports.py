"""What a running daemon imports: parts its config does not use stay out of memory (issue 12).

A real ``rtedge run`` against the local peer with ``PYTHONPROFILEIMPORTTIME=1``, so every module
it imports, for the whole run, is a line in its log."""

from __future__ import annotations

from tests.e2e import DaemonFactory, PeerFactory
from tests.support import Daemon, http, tone, wait_for


def imported(daemon: Daemon, package: str) -> bool:
    for line in daemon.log().splitlines():
        if line.startswith("import time:"):
            name = line.rsplit("|", 1)[-1].strip()
            if name == package or name.startswith(package + "."):
                return True
    return False


def test_prometheus_and_display_are_imported_only_when_used(
    peer_factory: PeerFactory, daemon_factory: DaemonFactory
) -> None:
    peer = peer_factory()
    daemon = daemon_factory(peer.calls_url, env={"PYTHONPROFILEIMPORTTIME": "1"})
    daemon.say(tone(0.6))
    daemon.wait_turn("speaking", 10)
    daemon.wait_turn("idle", 30)
    assert imported(daemon, "aiortc"), "import profiling did not reach the log"
    # display.backend = "none" and nothing scraped /metrics yet: neither stack was loaded
    assert not imported(daemon, "rtedge.display.pipeline")
    assert not imported(daemon, "PIL")  # Pillow draws captions into frames: display only
    assert not imported(daemon, "prometheus_client")
    assert not imported(daemon, "rtedge.metrics")
    # The button is built from gpiozero's own modules (rtedge.controls.gpio), not its __init__
    # (which imports every device family). importlib.import_module leaves no profile line, but
    # what the button's module imports with import statements does.
    assert imported(daemon, "gpiozero.devices")
    assert not imported(daemon, "gpiozero.boards")
    assert not imported(daemon, "gpiozero.spi_devices")
    # The first scrape builds the registry with every collector, the call's counts included.
    code, body = http("GET", daemon.url + "/metrics")
    assert code == 200
    assert "rtedge_call_up 1.0" in body
    assert 'rtedge_events_received_total{type="response.done"} 1.0' in body
    assert 'rtedge_audio_xruns_total{direction="playback"}' in body  # the app's own collector
    assert "process_resident_memory_bytes" in body
    assert "rtedge_http_refused_total" in body
    wait_for(lambda: imported(daemon, "prometheus_client"), 5, "prometheus-client imported")
    assert http("GET", daemon.url + "/metrics")[1].count("# TYPE rtedge_call_up gauge") == 1
