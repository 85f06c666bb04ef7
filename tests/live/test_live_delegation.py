"""GPT-Live delegation on the device without a network: client delegations answered at once with
commentary (acks and refusals counted), odd ones tolerated, the built-in tools, their settings."""

from __future__ import annotations

import json
from typing import Any

import pytest
from openai.types.live.commentary_append_event_param import CommentaryAppendEventParam
from openai.types.live.live_create_params import LiveCreateParams
from pydantic import TypeAdapter

from rtedge.live.delegation import BUILTIN_TOOLS, DeviceTools, tool_schemas
from rtedge.live.signaling import build_session
from rtedge.peer.live_http import validate_create
from rtedge.settings import RealtimeSettings
from rtedge.state import State
from tests.live.test_live_units import conversation, event
from tests.test_cli import rtedge


def created(target: Any, did: Any = "item_9tA2") -> Any:
    return event(
        type="session.delegation.created",
        event_id="evt_1",
        offset_ms=1200,
        delegation={"id": did, "type": "delegation", "target": target},
    )


def test_client_delegation_is_answered_at_once_with_commentary() -> None:
    conv, _, sent, state = conversation()
    conv.on_event(created("client"))
    append = sent[-1]
    TypeAdapter(CommentaryAppendEventParam).validate_python(append)
    assert append["type"] == "session.commentary.append"
    assert append["delegation_id"] == "item_9tA2" and "no backend" in append["content"]
    assert state.delegations == {"client": 1}
    conv.on_event(
        event(
            type="session.commentary.appended",
            event_id="evt_2",
            client_event_id=append["event_id"],
            start_ms=1300,
            end_ms=1300,
        )
    )
    assert state.snapshot()["delegations"] == {"client": 1, "client_answered": 1}
    assert append["event_id"] not in conv.pending


def test_refused_commentary_is_counted_and_not_fatal() -> None:
    conv, _, sent, state = conversation()
    conv.on_event(created("client", "item_2"))
    eid = sent[-1]["event_id"]
    conv.on_event(
        event(
            type="error",
            error={"code": "invalid_value", "client_event_id": eid},
        )
    )
    assert state.delegations["client_refused"] == 1


@pytest.mark.parametrize("target", ["martian", 7, None])
def test_odd_delegations_are_counted_and_ignored(target: Any) -> None:
    conv, _, sent, state = conversation()
    before = len(sent)
    conv.on_event(created(target))
    conv.on_event(created("client", did=None))  # a client delegation with no id to answer
    assert len(sent) == before and state.delegations["odd"] == 2


def test_backend_delegations_are_counted_without_an_answer() -> None:
    conv, _, sent, state = conversation()
    before = len(sent)
    conv.on_event(created("responses"))
    conv.on_event(created("decisions"))
    assert len(sent) == before
    assert state.delegations == {"responses": 1, "decisions": 1}


def test_device_status_shares_only_safe_fields() -> None:
    state = State(provider="live", call_id="live_secret_id", last_error="key sk-xyz refused")
    state.transcript_user = "my pin is 1234"
    out = json.loads(DeviceTools(state)("device_status", "{}"))
    assert set(out) == {
        "connection",
        "turn",
        "healthy",
        "problems",
        "session_age_s",
        "reconnects",
        "provider",
    }
    text = json.dumps(out)
    assert "live_secret_id" not in text and "sk-xyz" not in text and "1234" not in text
    when = json.loads(DeviceTools(state, clock=lambda: 0.0)("device_time", "{}"))
    assert when["local_time"].startswith("1970-01-01T")
    assert "not available" in DeviceTools(state)("launch", "{}")


def test_tools_setting_builds_responses_delegation() -> None:
    rt = RealtimeSettings(provider="live", api_key="k", live={"tools": ["device_status"]})
    session = build_session(rt, tools=tool_schemas(rt.live.tools))
    body = {"session": session, "transport": {"type": "webrtc", "sdp": "v=0"}}
    TypeAdapter(LiveCreateParams).validate_python(body)  # the SDK's own shape
    validate_create(body)  # and the peer's strict one
    assert session["delegation"]["type"] == "responses"
    assert session["delegation"]["responses"]["tools"] == [BUILTIN_TOOLS["device_status"]]
    assert "delegation" not in build_session(RealtimeSettings(provider="live", api_key="k"))


def test_bad_tools_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown tool 'lamp'"):
        RealtimeSettings(provider="live", api_key="k", live={"tools": ["lamp"]})
    with pytest.raises(ValueError, match="named twice"):
        RealtimeSettings(
            provider="live", api_key="k", live={"tools": ["device_time", "device_time"]}
        )
    with pytest.raises(ValueError, match='live.tools: .*provider = "live" only'):
        RealtimeSettings(provider="openai", api_key="k", live={"tools": ["device_time"]})


def test_check_exits_78_naming_the_tools_field(tmp_path: Any) -> None:
    cfg = tmp_path / "bad.toml"
    cfg.write_text('[realtime]\nprovider = "live"\napi_key = "k"\n[realtime.live]\ntools = ["x"]\n')
    proc = rtedge("check", "--config", str(cfg))
    assert proc.returncode == 78
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "realtime.live.tools" in lines[0], proc.stderr


def test_delegation_counts_reach_metrics() -> None:
    from collections import Counter

    from prometheus_client import CollectorRegistry, generate_latest

    from rtedge.live.usage import LiveUsage
    from rtedge.live.usage_metrics import LiveUsageCollector

    counts: Counter[str] = Counter()
    registry = CollectorRegistry()
    registry.register(LiveUsageCollector(LiveUsage(), counts))
    assert "rtedge_live_delegations" not in generate_latest(registry).decode()
    counts.update({"client": 2, "client_answered": 1})
    text = generate_latest(registry).decode()
    assert 'rtedge_live_delegations_total{kind="client"} 2.0' in text
    assert 'rtedge_live_delegations_total{kind="client_answered"} 1.0' in text


def test_delegation_log_lines_are_rate_limited(caplog: pytest.LogCaptureFixture) -> None:
    from rtedge.live.delegation import LiveDelegation

    now = [0.0]
    sent: list[dict[str, Any]] = []
    state = State(provider="live")
    deleg = LiveDelegation(state, lambda e: sent.append(e) or "e1", clock=lambda: now[0])
    with caplog.at_level("INFO", logger="rtedge.live.delegation"):
        for i in range(50):  # a flood: every one is still answered and counted
            deleg.on_created(created("client", f"item_{i}"))
        assert len(sent) == 50 and state.delegations["client"] == 50
        assert len(caplog.records) == 5
        now[0] += 10.0  # two tokens later: one line that says how many were left out
        deleg.on_created(created("martian"))
    assert len(caplog.records) == 6
    assert "(and 45 more)" in caplog.records[-1].getMessage()
