"""Faults at start-up: the service down when the daemon boots, and a configuration file with
every kind of bad value (exit 78, EX_CONFIG, with one line naming the key)."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.faults.rig import CONNECT_SLACK_S, FaultDaemon, backoff_window
from tests.support import Peer, base_env, free_port, http, wait_for

PeerFactory = Callable[..., Peer]
FaultDaemonFactory = Callable[..., FaultDaemon]


def test_peer_down_at_boot(peer_factory: PeerFactory, fault_daemon: FaultDaemonFactory) -> None:
    port = free_port()  # nothing listens here yet
    url = f"http://127.0.0.1:{port}/v1/realtime/calls"
    t_boot = time.monotonic()
    daemon = fault_daemon(url, wait=False)
    assert daemon.watch is not None
    # Up and supervising with the network down: ready, not healthy, and saying why.
    wait_for(lambda: http("GET", daemon.url + "/readyz")[0] == 200, 20, "ready")
    wait_for(
        lambda: daemon.status()["reconnects"] >= 0 and daemon.status()["last_error"], 10, "err"
    )
    # Four failed attempts: the delay now in progress is max_s (0.3, 0.6, 1.2, then 2 s).
    wait_for(lambda: daemon.log().count("event=connect_failed") >= 4, 10, "four attempts")
    code, body = daemon.healthz()
    assert code == 503, body
    assert any("connect" in p.lower() or "backoff" in p for p in body["problems"]), body
    assert daemon.alive()
    peer = peer_factory(port=port)  # returns once the peer answers
    t_up = time.monotonic()
    recovery = daemon.watch.wait_new_call(t_up, None, 30)
    _, hi = backoff_window(1, first=10)  # at most one max_s delay in progress
    assert recovery <= hi + CONNECT_SLACK_S, recovery
    assert peer.active_call() is not None
    print(
        f"RECOVERY peer_down_at_boot {recovery:.2f}s after the peer came up "
        f"(booted {t_up - t_boot:.1f}s before)"
    )
    before = daemon.baseline()
    old = daemon.call_id()
    peer.fault(call="drop_connection")
    daemon.watch.wait_new_call(time.monotonic() - 0.1, old, 15)
    daemon.assert_no_leak(before)


#: (what is wrong, TOML text, the key the one line must name). Every kind of bad value.
BAD_CONFIGS: list[tuple[str, str, str]] = [
    ("wrong type", '[realtime]\nconnect_timeout_s = "fast"\n', "realtime.connect_timeout_s"),
    ("below range", "[reconnect]\ninitial_s = -1\n", "reconnect.initial_s"),
    ("above range", "[audio]\nsample_rate = 1000000\n", "audio.sample_rate"),
    ("zero where positive", "[realtime]\nliveness_timeout_s = 0\n", "realtime.liveness_timeout_s"),
    ("not a number (nan)", "[reconnect]\njitter = nan\n", "reconnect.jitter"),
    ("infinite", "[reconnect]\nmax_s = inf\n", "reconnect.max_s"),
    ("misspelt key", "[reconnect]\nintial_s = 1\n", "reconnect.intial_s"),
    ("unknown section", "[radio]\nvolume = 1\n", "radio"),
    ("section as a value", "audio = 5\n", "audio"),
    ("not one of the choices", '[realtime]\nprovider = "acme"\n', "realtime.provider"),
    ("not a URL", '[realtime]\nurl = "ftp://example.com/calls"\n', "realtime.url"),
    ("plain http off loopback", '[realtime]\nurl = "http://example.com/v1"\n', "realtime.url"),
    ("inconsistent pair", "[reconnect]\ninitial_s = 5\nmax_s = 1\n", "reconnect.max_s"),
    (
        "missing key file",
        '[realtime]\napi_key_file = "/nonexistent/key"\n',
        "realtime.api_key_file",
    ),
    ("empty key file", '[realtime]\napi_key_file = "{empty}"\n', "realtime.api_key_file"),
    ("bad HOST:PORT", '[health]\nlisten = "localhost"\n', "health.listen"),
    ("port out of range", '[health]\nlisten = "127.0.0.1:70000"\n', "health.listen"),
    ("not a boolean", '[ptt]\nactive_low = "maybe"\n', "ptt.active_low"),
    ("GPIO pin out of range", "[ptt]\ngpio_pin = 99\n", "ptt.gpio_pin"),
    ("string for a list", '[realtime]\nice_servers = "stun:example.com"\n', "realtime.ice_servers"),
    (
        "secret of the wrong type",
        '[realtime]\napi_key = ["sk-DO-NOT-ECHO-7"]\n',
        "realtime.api_key",
    ),
    ("bad log level", '[logging]\nlevel = "loud"\n', "logging.level"),
    ("display backend", '[display]\nbackend = "hdmi"\n', "display.backend"),
    ("not TOML at all", "[realtime\nurl = \n", "not valid TOML"),
    ("no key at all", '[realtime]\nprovider = "local"\n', "realtime.api_key"),
]


def run_config(path: Path, env_extra: dict[str, str] | None = None) -> tuple[int, str, float]:
    env = base_env()
    env.update(env_extra or {})
    t0 = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "rtedge", "run", "--config", str(path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    return proc.returncode, proc.stdout + proc.stderr, time.monotonic() - t0


def check_one(out: str, code: int, key: str, secret: str | None = None) -> str | None:
    lines = [line for line in out.splitlines() if line.strip()]
    if code != 78:
        return f"exit {code}, not 78: {out[-300:]!r}"
    if len(lines) != 1:
        return f"{len(lines)} lines, not one: {lines!r}"
    if not lines[0].startswith("rtedge: config error: ") or key not in lines[0]:
        return f"line does not name {key!r}: {lines[0]!r}"
    if secret is not None and secret in out:
        return "the bad secret value was echoed"
    return None


# 27 daemons started four at a time (tests/conftest.py: heavy)
@pytest.mark.heavy
def test_config_with_every_kind_of_bad_value(tmp_path: Path) -> None:
    empty = tmp_path / "empty.key"
    empty.write_text("\n")
    jobs: list[tuple[str, Path, dict[str, str], str]] = []
    for i, (what, text, key) in enumerate(BAD_CONFIGS):
        path = tmp_path / f"bad{i}.toml"
        path.write_text(text.replace("{empty}", str(empty)))
        jobs.append((what, path, {}, key))
    good = tmp_path / "good.toml"
    good.write_text('[realtime]\nprovider = "local"\napi_key = "k"\n')
    # The same checks through the environment, and a config file that is not there.
    jobs.append(
        (
            "bad value from the environment",
            good,
            {"RTEDGE_AUDIO__PERIOD_MS": "3"},
            "audio.period_ms",
        )
    )
    jobs.append(("file not found", tmp_path / "absent.toml", {}, "config file not found"))
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda j: run_config(j[1], j[2]), jobs))
    problems = []
    for (what, _, _, key), (code, out, seconds) in zip(jobs, results, strict=True):
        secret = "sk-DO-NOT-ECHO-7" if "secret" in what else None
        err = check_one(out, code, key, secret)
        if err:
            problems.append(f"{what}: {err}")
        else:
            print(f"CONFIG {what}: {out.strip()}  [{seconds:.1f}s]")
    assert not problems, "\n".join(problems)
