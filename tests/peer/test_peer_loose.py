"""The loose-service faults: what ``POST /_rtedge/faults`` accepts for them, and what a loosening
does to an outgoing event (the e2e use is tests/realtime/test_loose_events_e2e.py)."""

from __future__ import annotations

import pytest

from rtedge.peer.faults import FaultSpecError, parse
from rtedge.peer.loose import Loosening


def test_loosening_drops_sets_and_renames_without_touching_the_original() -> None:
    loose = Loosening(
        drop=["response.done:event_id", "response.done:response.id"],
        set={"response.done:response.output_modalities": ["audio", "image"]},
        rename={"response.done": "response.finished"},
    )
    event = {"type": "response.done", "event_id": "e1", "response": {"id": "r1"}}
    out = loose.apply(event)
    assert out == {
        "type": "response.finished",
        "response": {"output_modalities": ["audio", "image"]},
    }
    assert event == {"type": "response.done", "event_id": "e1", "response": {"id": "r1"}}
    other = {"type": "response.created", "event_id": "e2"}
    assert loose.apply(other) is other


def test_fault_specs() -> None:
    f = parse({"call": "end_next_response", "status": "failed"})
    assert f.kind == "end_next_response" and f.status == "failed"
    f = parse({"call": "refuse_next", "event": "response.create"})
    assert f.refuse == {"response.create": "conversation_already_has_active_response"}
    f = parse({"call": "loosen", "drop": ["response.done:event_id"]})
    assert f.loosening is not None and f.loosening.drop == ["response.done:event_id"]


@pytest.mark.parametrize(
    ("spec", "param"),
    [
        ({"call": "end_next_response", "status": "completed"}, "status"),
        ({"call": "refuse_next", "event": "response.cancel"}, "event"),
        ({"call": "loosen", "drop": ["response.done"]}, "drop"),
        ({"call": "loosen", "set": {"no_path": 1}}, "set"),
        ({"call": "loosen", "rename": {"a": ""}}, "rename"),
        ({"call": "loosen", "status": "failed"}, "status"),
    ],
)
def test_bad_fault_specs_name_the_field(spec: dict[str, object], param: str) -> None:
    with pytest.raises(FaultSpecError) as info:
        parse(spec)
    assert info.value.param == param
