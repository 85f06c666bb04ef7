"""What ships in config/prometheus/ checked by the real promtool and amtool: the configs parse,
the rules load, every alert's unit tests pass, and those tests can fail."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CONF = ROOT / "config" / "prometheus"
RULES = CONF / "rules" / "rtedge-alerts.yml"
UNIT_TESTS = CONF / "tests" / "rtedge-alerts.test.yml"

pytestmark = pytest.mark.skipif(
    shutil.which("promtool") is None, reason="promtool missing (scripts/setup installs prometheus)"
)


def run(*argv: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=120)


def alert_names(rules_text: str) -> list[str]:
    return re.findall(r"^\s*- alert: (\w+)$", rules_text, re.MULTILINE)


def test_prometheus_config_and_rules_check() -> None:
    proc = run("promtool", "check", "config", str(CONF / "prometheus.yml"))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS: 2 rule files found" in proc.stdout
    proc = run("promtool", "check", "rules", *map(str, sorted((CONF / "rules").glob("*.yml"))))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"SUCCESS: {len(alert_names(RULES.read_text()))} rules found" in proc.stdout


def test_device_agent_config_checks_in_agent_mode() -> None:
    proc = run("promtool", "check", "config", "--agent", str(CONF / "device-agent.yml"))
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.skipif(shutil.which("amtool") is None, reason="amtool missing")
def test_alertmanager_config_checks() -> None:
    proc = run("amtool", "check-config", str(CONF / "alertmanager.yml"))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # The inhibitions name alerts that exist.
    names = set(alert_names(RULES.read_text()))
    mentioned = set(re.findall(r"Rtedge\w+", (CONF / "alertmanager.yml").read_text()))
    assert mentioned <= names, mentioned - names


def test_target_files_give_every_device_its_id_and_site(tmp_path: Path) -> None:
    # Run from elsewhere: the targets/ glob is relative to the config file, not the cwd.
    proc = run(
        "promtool", "check", "service-discovery", "--timeout=5s",
        str(CONF / "prometheus.yml"), "rtedge", cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    targets = json.loads(proc.stdout)
    assert targets, proc.stdout
    for target in targets:
        labels = target["labels"]
        assert labels["job"] == "rtedge" and labels["device_id"] and labels["site"], target


def test_a_target_without_device_id_is_dropped(tmp_path: Path) -> None:
    shutil.copy(CONF / "prometheus.yml", tmp_path / "prometheus.yml")
    (tmp_path / "targets").mkdir()
    (tmp_path / "targets" / "shop.yml").write_text(
        '- targets: ["10.0.0.1:8787"]\n  labels: {site: s, device_id: a}\n'
        '- targets: ["10.0.0.2:8787"]\n  labels: {site: s}\n'
    )
    proc = run(
        "promtool", "check", "service-discovery", "--timeout=5s",
        str(tmp_path / "prometheus.yml"), "rtedge", cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    kept = [t["labels"]["instance"] for t in json.loads(proc.stdout) if t["labels"]]
    assert kept == ["10.0.0.1:8787"]


def test_alert_unit_tests_pass() -> None:
    proc = run("promtool", "test", "rules", str(UNIT_TESTS))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS" in proc.stdout


def test_every_alert_has_a_firing_and_a_quiet_case() -> None:
    cases: dict[str, set[str]] = {}
    for alertname, body in re.findall(
        r"alertname: (\w+)\n\s+exp_alerts:(.*?)(?=\n\s+- eval_time:|\n\s*- name:|\Z)",
        UNIT_TESTS.read_text(),
        re.DOTALL,
    ):
        cases.setdefault(alertname, set()).add("quiet" if body.strip() == "[]" else "fires")
    for name in alert_names(RULES.read_text()):
        assert cases.get(name) == {"fires", "quiet"}, (name, cases.get(name))


def _mutated(tmp_path: Path, alert: str) -> Path:
    """A copy of the rules and tests where ``alert`` can never fire."""
    text = RULES.read_text()
    pattern = re.compile(
        rf"(- alert: {alert}\n(?:\s+#.*\n)*\s+expr: )(\|\n(?:\s{{10}}.*\n)+|.*\n)", re.MULTILINE
    )
    mutated, n = pattern.subn(r"\g<1>vector(0) == 1\n", text)
    assert n == 1, alert
    (tmp_path / "rules").mkdir(exist_ok=True)
    (tmp_path / "tests").mkdir(exist_ok=True)
    (tmp_path / "rules" / "rtedge-alerts.yml").write_text(mutated)
    shutil.copy(CONF / "rules" / "rtedge-recording.yml", tmp_path / "rules")
    shutil.copy(UNIT_TESTS, tmp_path / "tests")
    return tmp_path / "tests" / UNIT_TESTS.name


def test_the_unit_tests_fail_when_any_alert_is_broken(tmp_path: Path) -> None:
    for name in alert_names(RULES.read_text()):
        proc = run("promtool", "test", "rules", str(_mutated(tmp_path, name)))
        assert proc.returncode != 0, f"{name}: tests still pass with the alert disabled"
        assert f"alertname: {name}," in proc.stderr, proc.stdout + proc.stderr


def test_grafana_dashboard_queries_parse_and_name_real_series(tmp_path: Path) -> None:
    from prometheus_client import CollectorRegistry, ProcessCollector, generate_latest

    from rtedge.metrics import Identity, PartsCollector, StateCollector
    from rtedge.state import State

    dashboard = json.loads((CONF / "grafana-fleet.json").read_text())
    exprs = [t["expr"].replace("$site", ".*") for p in dashboard["panels"] for t in p["targets"]]
    assert exprs
    # promtool parses each query as a recording rule (JSON is YAML).
    records = [{"record": f"dashboard:panel{i}", "expr": e} for i, e in enumerate(exprs)]
    rules = {"groups": [{"name": "dashboard", "rules": records}]}
    (tmp_path / "dashboard.yml").write_text(json.dumps(rules))
    proc = run("promtool", "check", "rules", str(tmp_path / "dashboard.yml"))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # Every series a panel reads is one the daemon exports or a shipped rule records.
    registry = CollectorRegistry()
    registry.register(StateCollector(State(), Identity("1", "d", "local", "m")))
    registry.register(PartsCollector(xruns=dict, watchdog_withheld=dict))
    ProcessCollector(registry=registry)
    known = set(re.findall(r"^# TYPE (\S+)", generate_latest(registry).decode(), re.MULTILINE))
    known |= {n + "_total" for n in known}
    for path in (CONF / "rules").glob("*.yml"):
        known |= set(re.findall(r"record: (\S+)", path.read_text()))
    for expr in exprs:
        for name in re.findall(r"\b((?:rtedge|process|instance:|site:)[a-z0-9_:]+)", expr):
            assert name in known, (name, expr)
