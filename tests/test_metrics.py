"""The /metrics names against Prometheus' conventions, read back with prometheus-client's own
parser from the bytes a scrape gets."""

from __future__ import annotations

import datetime as dt
import shutil
import subprocess
import time

import pytest
from prometheus_client import CollectorRegistry, ProcessCollector, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from rtedge.metrics import Identity, PartsCollector, StateCollector
from rtedge.protocol.deprecations import shutdown_timestamp
from rtedge.realtime.usage import count_usage
from rtedge.state import Connection, State

Samples = dict[str, list[tuple[dict[str, str], float]]]


def scrape(state: State, identity: Identity | None = None) -> Samples:
    registry = CollectorRegistry()
    registry.register(StateCollector(state, identity))
    registry.register(
        PartsCollector(xruns=lambda: {"playback": 3}, watchdog_withheld=lambda: {"capture": 1})
    )
    text = generate_latest(registry).decode()
    out: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out.setdefault(sample.name, []).append((sample.labels, sample.value))
    return out


def test_identity_and_model_shutdown_exported() -> None:
    ident = Identity("1.2.3", "kiosk-7", "openai", "gpt-old", model_shutdown=1_800_000_000.0)
    metrics = scrape(State(), ident)
    labels = {"version": "1.2.3", "device_id": "kiosk-7", "provider": "openai", "model": "gpt-old"}
    assert metrics["rtedge_info"] == [(labels, 1.0)]
    assert metrics["rtedge_model_shutdown_timestamp_seconds"] == [
        ({"model": "gpt-old"}, 1_800_000_000.0)
    ]
    no_date = scrape(State(), Identity("1.2.3", "kiosk-7", "openai", "gpt-realtime-2"))
    assert "rtedge_model_shutdown_timestamp_seconds" not in no_date


def test_counters_end_in_total_and_units_are_in_names() -> None:
    state = State()
    state.queue_drops["mic"] += 2
    state.events_bad["invalid_json"] += 1
    count_usage(state.tokens, {"input_tokens": 4, "input_token_details": {"audio_tokens": 4}})
    registry = CollectorRegistry()
    registry.register(StateCollector(state, Identity("1", "d", "local", "m")))
    for family in text_string_to_metric_families(generate_latest(registry).decode()):
        assert family.name.startswith("rtedge_"), family.name
        if family.type == "counter":
            assert all(s.name.endswith("_total") for s in family.samples), family.name
        # Seconds, ratios and timestamps are named by their unit; no milliseconds anywhere.
        assert "_ms" not in family.name and "millis" not in family.name
    metrics = scrape(state)
    assert metrics["rtedge_queue_drops_total"] == [({"queue": "mic"}, 2.0)]
    assert metrics["rtedge_realtime_tokens_total"] == [
        ({"direction": "input", "modality": "audio"}, 4.0)
    ]
    assert metrics["rtedge_audio_xruns_total"] == [({"direction": "playback"}, 3.0)]
    assert metrics["rtedge_watchdog_pings_withheld_total"] == [({"part": "capture"}, 1.0)]


def test_states_are_one_hot_and_connected_seconds_add_up() -> None:
    state = State(connection=Connection.BACKOFF, call_seconds_done=100.0)
    metrics = scrape(state)
    states = {labels["state"]: v for labels, v in metrics["rtedge_connection_state"]}
    assert states["backoff"] == 1.0 and sum(states.values()) == 1.0
    assert len(metrics["rtedge_turn_state"]) == 4
    assert metrics["rtedge_call_up"] == [({}, 0.0)]
    assert metrics["rtedge_call_connected_seconds_total"] == [({}, 100.0)]
    state.update(connection=Connection.CONNECTED, session_started=time.monotonic() - 5)
    seconds = scrape(state)["rtedge_call_connected_seconds_total"][0][1]
    assert 105.0 <= seconds < 106.0


def test_model_shutdown_dates_are_utc_midnight() -> None:
    day = dt.datetime(2027, 1, 20, tzinfo=dt.UTC).timestamp()
    assert shutdown_timestamp("gpt-realtime") == day  # from the openai package's docstrings
    assert shutdown_timestamp("gpt-realtime-2") is None  # no date announced


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool missing")
def test_promtool_lints_the_whole_exposition_clean() -> None:
    state = State()
    state.queue_drops["mic"] += 1
    state.events_in["session.created"] += 1
    state.events_bad["invalid_json"] += 1
    state.set_device("capture", False, "gone")
    count_usage(state.tokens, {"output_tokens": 3, "output_token_details": {"text_tokens": 3}})
    registry = CollectorRegistry()
    registry.register(StateCollector(state, Identity("1", "d", "local", "gpt-realtime")))
    registry.register(
        PartsCollector(xruns=lambda: {"capture": 1}, watchdog_withheld=lambda: {"capture": 1})
    )
    ProcessCollector(registry=registry)

    def lint(exposition: bytes) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(
            ["promtool", "check", "metrics"], input=exposition, capture_output=True, timeout=30
        )

    proc = lint(generate_latest(registry))
    assert proc.returncode == 0 and not proc.stdout.strip(), proc.stdout + proc.stderr
    # The linter does catch what the conventions forbid (a counter without _total).
    assert lint(b"# HELP rtedge_x X\n# TYPE rtedge_x counter\nrtedge_x 1\n").returncode != 0
