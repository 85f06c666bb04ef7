"""The shared state snapshot is what /status serves: it must be plain JSON."""

from __future__ import annotations

import json

from rtedge.state import Connection, State


def test_snapshot_is_json_with_counters_as_plain_dicts() -> None:
    state = State()
    state.subscribe(lambda s: None)
    state.events_in["response.done"] += 2
    state.events_bad["invalid_json"] += 1
    state.count_drop("mic", 3)
    state.set_device("capture", False, "unplugged")
    snap = json.loads(json.dumps(state.snapshot()))
    assert snap["events_in"] == {"response.done": 2}
    assert snap["events_bad"] == {"invalid_json": 1}
    assert snap["queue_drops"] == {"mic": 3}
    assert snap["devices"]["capture"]["ok"] is False
    assert snap["healthy"] is False
    assert "capture unavailable: unplugged" in snap["problems"]
    state.update(connection=Connection.CONNECTED)
    state.set_device("capture", True)
    assert state.snapshot()["healthy"] is True
