"""The pull-free path for a device behind NAT: Prometheus in agent mode on the device (the shipped
device-agent.yml) scrapes the daemon and remote-writes to a central Prometheus started with
--web.enable-remote-write-receiver. Nothing connects to the device."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.fleet.rig import CONF, PROMETHEUS, Prometheus, substitute
from tests.support import Daemon, Peer, wait_for

pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(180),
    pytest.mark.skipif(PROMETHEUS is None, reason="prometheus missing (scripts/setup installs it)"),
]


def test_agent_on_the_device_pushes_its_series_to_the_central_prometheus(
    tmp_path: Path,
    peer_factory: Callable[..., Peer],
    daemon_factory: Callable[..., Daemon],
) -> None:
    peer = peer_factory()
    daemon = daemon_factory(peer.calls_url, config={"health": {"device_id": "kiosk-nat"}})
    # The central server scrapes nothing: everything it knows arrives by remote-write.
    central = Prometheus(
        tmp_path / "central",
        "global: {evaluation_interval: 1s}\nscrape_configs: []\n",
        receiver=True,
    )
    agent: Prometheus | None = None
    try:
        agent_config = substitute(
            (CONF / "device-agent.yml").read_text(),
            {
                "scrape_interval: 30s": "scrape_interval: 1s",
                "device_id: DEVICE_ID": "device_id: kiosk-nat",
                "site: SITE": "site: shop-behind-nat",
                '"127.0.0.1:8787"': f'"127.0.0.1:{daemon.port}"',
                "https://prometheus.example.net/api/v1/write": f"{central.url}/api/v1/write",
            },
        )
        agent = Prometheus(tmp_path / "agent", agent_config, agent=True)

        def pushed() -> dict[str, float]:
            return central.values('rtedge_call_up{job="rtedge-push"}', "device_id")

        wait_for(lambda: pushed() == {"kiosk-nat": 1.0}, 60, "the device's call_up pushed")
        (info,) = central.query('rtedge_info{job="rtedge-push"}')
        assert info["metric"]["device_id"] == "kiosk-nat"  # the device's own id, no clash
        assert info["metric"]["site"] == "shop-behind-nat"
        assert info["metric"]["provider"] == "local"
        # `up` travels too: the stale-device alert for pushing devices is built on it.
        assert central.values('up{job="rtedge-push"}', "device_id") == {"kiosk-nat": 1.0}

        # A change on the device shows centrally: the call drops when the peer goes away.
        peer.kill()
        wait_for(lambda: pushed() == {"kiosk-nat": 0.0}, 60, "the dropped call pushed")
    finally:
        if agent is not None:
            agent.stop()
        central.stop()
        daemon.stop()
