"""Real Prometheus and Alertmanager processes on loopback for the fleet tests: free ports, temp
directories, configs derived from what ships in config/prometheus/ with short intervals."""

from __future__ import annotations

import re
import shutil
import urllib.parse
from pathlib import Path
from typing import Any

from tests.support import Proc, base_env, free_port, http, wait_for

ROOT = Path(__file__).resolve().parents[2]
CONF = ROOT / "config" / "prometheus"
PROMETHEUS = shutil.which("prometheus")
ALERTMANAGER = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")


def substitute(text: str, changes: dict[str, str]) -> str:
    """``text`` with each key replaced once by its value; a key not found is a broken test."""
    for old, new in changes.items():
        assert text.count(old) == 1, old
        text = text.replace(old, new)
    return text


def central_config(workdir: Path, alertmanager_port: int, **intervals: str) -> str:
    """The shipped prometheus.yml with test intervals and this Alertmanager, its rules copied
    beside it (relative paths resolve against the config file's directory)."""
    (workdir / "targets").mkdir(parents=True, exist_ok=True)
    shutil.copytree(CONF / "rules", workdir / "rules", dirs_exist_ok=True)
    return substitute(
        (CONF / "prometheus.yml").read_text(),
        {
            "scrape_interval: 30s": f"scrape_interval: {intervals['scrape']}",
            "evaluation_interval: 30s": f"evaluation_interval: {intervals['evaluation']}",
            "scrape_timeout: 10s": "scrape_timeout: 1s",
            "refresh_interval: 5m": "refresh_interval: 1s",
            '"127.0.0.1:9093"': f'"127.0.0.1:{alertmanager_port}"',
        },
    )


def shorten_for(rules_dir: Path, alert: str, duration: str) -> None:
    """Shorten ``alert``'s ``for:`` in the copied rules, so a test waits seconds, not minutes."""
    path = rules_dir / "rtedge-alerts.yml"
    text = path.read_text()
    pattern = re.compile(rf"(- alert: {alert}\n(?:.*\n)*?\s+for: )\S+")
    text, n = pattern.subn(rf"\g<1>{duration}", text, count=1)
    assert n == 1, alert
    path.write_text(text)


class Alertmanager:
    def __init__(self, workdir: Path) -> None:
        assert ALERTMANAGER is not None
        self.dir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        argv = [
            ALERTMANAGER,
            f"--config.file={CONF / 'alertmanager.yml'}",
            f"--storage.path={workdir / 'data'}",
            f"--web.listen-address=127.0.0.1:{self.port}",
            "--cluster.listen-address=",  # no gossip port: one instance, loopback only
            "--log.level=warn",
        ]
        self.proc = Proc("alertmanager", argv, base_env(), workdir / "alertmanager.log")
        wait_for(lambda: http("GET", f"{self.url}/-/ready")[0] == 200, 30, "alertmanager ready")

    def alerts(self, alertname: str) -> list[dict[str, Any]]:
        """Alerts Alertmanager holds as active (firing, not yet resolved)."""
        query = urllib.parse.urlencode({"filter": f'alertname="{alertname}"'})
        status, body = http("GET", f"{self.url}/api/v2/alerts?{query}")
        assert status == 200, (status, body)
        return [a for a in body if a["status"]["state"] == "active"]

    def stop(self) -> None:
        self.proc.terminate()


class Prometheus:
    """A real Prometheus: server mode (rules, alerting, optionally the remote-write receiver) or
    agent mode (scrape and remote-write only)."""

    def __init__(
        self,
        workdir: Path,
        config: str,
        *,
        agent: bool = False,
        receiver: bool = False,
        env: dict[str, str] | None = None,
    ) -> None:
        assert PROMETHEUS is not None
        self.dir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.config = workdir / "prometheus.yml"
        self.config.write_text(config)
        argv = [
            PROMETHEUS,
            f"--config.file={self.config}",
            f"--web.listen-address=127.0.0.1:{self.port}",
            "--log.level=warn",
        ]
        if agent:
            argv += ["--enable-feature=agent", f"--storage.agent.path={workdir / 'wal'}"]
        else:
            argv += [f"--storage.tsdb.path={workdir / 'data'}"]
        if receiver:
            argv.append("--web.enable-remote-write-receiver")
        self.proc = Proc("prometheus", argv, {**base_env(), **(env or {})}, self.dir / "log")
        wait_for(self._ready, 60, "prometheus ready")

    def _ready(self) -> bool:
        assert self.proc.alive(), self.proc.log_text()
        return http("GET", f"{self.url}/-/ready")[0] == 200

    def query(self, expr: str) -> list[dict[str, Any]]:
        status, body = http(
            "GET", f"{self.url}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
        )
        assert status == 200 and body["status"] == "success", (status, body)
        return list(body["data"]["result"])

    def values(self, expr: str, label: str) -> dict[str, float]:
        """``expr``'s current samples as {value of ``label``: sample value}."""
        return {r["metric"].get(label, ""): float(r["value"][1]) for r in self.query(expr)}

    def stop(self) -> None:
        self.proc.terminate()
