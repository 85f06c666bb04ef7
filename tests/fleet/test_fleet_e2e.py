"""A fleet on loopback: a real Prometheus with the shipped config and rules scrapes three real
daemons, each in a call with its own local peer, and a real Alertmanager receives the alerts.
One device's peer goes away: its call-down alert reaches Alertmanager within the rule's ``for``
plus two scrape intervals, for that device only, and resolves when the peer is back."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.fleet.rig import (
    ALERTMANAGER,
    PROMETHEUS,
    Alertmanager,
    Prometheus,
    central_config,
    shorten_for,
)
from tests.support import Daemon, Peer, wait_for

pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(240),
    pytest.mark.skipif(
        PROMETHEUS is None or ALERTMANAGER is None,
        reason="prometheus / prometheus-alertmanager missing (scripts/setup installs them)",
    ),
]

SCRAPE_S = 2.0
EVAL_S = 0.5
FOR_S = 6.0
DEVICES = ("kiosk-a", "kiosk-b", "kiosk-c")


@pytest.fixture
def fleet(
    tmp_path: Path, daemon_factory: Callable[..., Daemon]
) -> Iterator[tuple[dict[str, Peer], dict[str, Daemon]]]:
    peers: dict[str, Peer] = {}
    daemons: dict[str, Daemon] = {}
    try:
        for device in DEVICES:
            workdir = tmp_path / f"peer-{device}"
            workdir.mkdir()
            peers[device] = Peer(workdir).start()
        for device in DEVICES:
            daemons[device] = daemon_factory(
                peers[device].calls_url, config={"health": {"device_id": device}}
            )
        yield peers, daemons
    finally:
        for peer in peers.values():
            peer.kill()


def test_call_down_alert_reaches_alertmanager_for_that_device_only_and_resolves(
    tmp_path: Path, fleet: tuple[dict[str, Peer], dict[str, Daemon]]
) -> None:
    peers, daemons = fleet
    am = Alertmanager(tmp_path / "alertmanager")
    prom: Prometheus | None = None
    try:
        central = tmp_path / "central"
        config = central_config(
            central, am.port, scrape=f"{SCRAPE_S:g}s", evaluation=f"{EVAL_S * 1000:g}ms"
        )
        shorten_for(central / "rules", "RtedgeCallDown", f"{FOR_S:g}s")
        # One target file for the site, as a fleet owner writes it.
        (central / "targets" / "shop-1.yml").write_text(
            "".join(
                f'- targets: ["127.0.0.1:{d.port}"]\n'
                f"  labels: {{site: shop-1, device_id: {name}}}\n"
                for name, d in daemons.items()
            )
        )
        prom = Prometheus(central, config)

        def calls_up() -> dict[str, float]:
            return prom.values('rtedge_call_up{job="rtedge"}', "device_id") if prom else {}

        wait_for(lambda: calls_up() == dict.fromkeys(DEVICES, 1.0), 60, "three calls scraped up")
        # What each device reports about itself arrives too (as exported_device_id: the target
        # file's device_id label wins a clash, which lets the two be compared).
        info = prom.query("rtedge_info")
        assert {r["metric"]["exported_device_id"] for r in info} == set(DEVICES)
        assert all(r["metric"]["device_id"] == r["metric"]["exported_device_id"] for r in info)
        assert am.alerts("RtedgeCallDown") == []

        # kiosk-b's service goes away.
        peer_port = peers["kiosk-b"].port
        peers["kiosk-b"].kill()
        wait_for(lambda: daemons["kiosk-b"].healthz()[0] == 503, 60, "kiosk-b notices")
        down_at = time.monotonic()
        firing = wait_for(lambda: am.alerts("RtedgeCallDown"), 60, "call-down alert in AM")
        latency = time.monotonic() - down_at
        assert latency <= FOR_S + 2 * SCRAPE_S, f"alert after {latency:.1f}s"
        assert [a["labels"]["device_id"] for a in firing] == ["kiosk-b"]
        (alert,) = firing
        assert alert["labels"]["site"] == "shop-1" and alert["labels"]["severity"] == "critical"
        assert alert["annotations"]["summary"].startswith("kiosk-b (shop-1): no call")
        assert "journalctl -u rtedge" in alert["annotations"]["runbook"]
        # The other two stayed up all along and raised nothing.
        assert calls_up() == {"kiosk-a": 1.0, "kiosk-b": 0.0, "kiosk-c": 1.0}

        # The service comes back on the same address: the daemon reconnects, the alert resolves.
        peers["kiosk-b"] = Peer(tmp_path / "peer-kiosk-b", port=peer_port).start()
        daemons["kiosk-b"].wait_healthy(timeout=60)
        seen: set[str] = set()

        def resolved() -> bool:
            active = am.alerts("RtedgeCallDown")
            seen.update(a["labels"]["device_id"] for a in active)
            return not active

        wait_for(resolved, 60, "call-down alert resolved in AM")
        assert seen <= {"kiosk-b"}, seen
        print(f"call-down alert in Alertmanager {latency:.1f}s after the device noticed")
    finally:
        if prom is not None:
            prom.stop()
        am.stop()
        for daemon in daemons.values():
            if daemon.proc is not None and daemon.proc.alive():
                daemon.stop()
