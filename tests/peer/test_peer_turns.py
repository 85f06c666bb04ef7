"""Turns end to end over real WebRTC: the GA event sequence on the wire, and the audio that came
back (voiced while the reply plays, silent after a cancel)."""

from __future__ import annotations

import asyncio
import base64
import json
import re
import time

import numpy as np
import pytest

from rtedge.peer import PeerConfig
from tests.peer.client import RATE, Client, rms, silence, tone, user_text
from tests.peer.conftest import PeerHandle
from tests.poll import until

PTT = {"type": "realtime", "audio": {"input": {"turn_detection": None}}}
LONG_TEXT = (
    "please remember the following list of things: apples, bananas, cherries, dates, elderberries, "
    "figs, grapes, honeydew melons"
)
VOICED_RMS = 0.01  # about -40 dBFS; decoded Opus silence is far below


def voiced_s(frames: list[np.ndarray]) -> float:
    return sum(f.size for f in frames if rms(f) > VOICED_RMS) / RATE


IN_FLIGHT_S = (1 + 4 + 1) * 0.02


def voiced_between(c: Client, t0: float, t1: float) -> float:
    frames = [f for t, f in zip(c.received.times, c.received.frames, strict=True) if t0 <= t < t1]
    return voiced_s(frames)


def response_events(c: Client, response_id: str) -> list[str]:
    out = []
    for e in c.events:
        rid = e.get("response_id") or (e.get("response") or {}).get("id")
        if (
            rid == response_id
            or e["type"].startswith("conversation.item.")
            and e["type"]
            in (
                "conversation.item.added",
                "conversation.item.done",
            )
            and e["item"].get("role") == "assistant"
        ):
            out.append(e["type"])
    return out


async def test_text_turn_spoken_reply_sequence_and_audio(peer: PeerHandle) -> None:
    c = await peer.connect(session=PTT)
    c.send(user_text("What is 2 plus 3?"))
    created = await c.request({"type": "response.create"}, "response.created")
    rid = created["response"]["id"]
    assert created["response"]["status"] == "in_progress"
    done = await c.wait_for("response.done")
    stopped = await c.wait_for("output_audio_buffer.stopped", within=15)
    assert stopped["response_id"] == rid
    seq = response_events(c, rid)
    core = [
        t
        for t in seq
        if t not in ("response.output_audio_transcript.delta", "output_audio_buffer.started")
    ]
    assert core == [
        "response.created",
        "response.output_item.added",
        "conversation.item.added",
        "response.content_part.added",
        "response.output_audio.done",
        "response.output_audio_transcript.done",
        "response.content_part.done",
        "response.output_item.done",
        "conversation.item.done",
        "response.done",
        "output_audio_buffer.stopped",
    ]
    started_at = seq.index("output_audio_buffer.started")
    assert (
        seq.index("response.content_part.added")
        < started_at
        < seq.index("output_audio_buffer.stopped")
    )
    deltas = "".join(e["delta"] for e in c.of("response.output_audio_transcript.delta"))
    transcript = c.of("response.output_audio_transcript.done")[0]["transcript"]
    assert deltas == transcript == "2 plus 3 is 5."
    resp = done["response"]
    assert resp["status"] == "completed"
    assert resp["output"][0]["content"] == [{"type": "output_audio", "transcript": transcript}]
    assert (
        resp["usage"]["total_tokens"] > 0
        and resp["usage"]["output_token_details"]["audio_tokens"] > 0
    )
    # The audio: voiced between started and stopped, about as long as the speech; silent after.
    t_start = c.of("output_audio_buffer.started")[0]["_t"]
    t_stop = stopped["_t"]
    assert 0.8 < voiced_between(c, t_start, t_stop + 0.2) < 3.0
    await asyncio.sleep(0.5)
    assert voiced_between(c, t_stop + 0.15, time.monotonic()) == 0.0
    assert c.of("rate_limits.updated")


async def test_text_only_modalities_use_output_text(peer: PeerHandle) -> None:
    c = await peer.connect(session={**PTT, "output_modalities": ["text"]})
    c.send(user_text("hello"))
    await c.request({"type": "response.create"}, "response.done")
    types = c.types()
    i = types.index("response.created")
    core = [t for t in types[i:] if t != "response.output_text.delta"]
    assert core == [
        "response.created",
        "response.output_item.added",
        "conversation.item.added",
        "response.content_part.added",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "conversation.item.done",
        "response.done",
    ]
    text = "".join(e["delta"] for e in c.of("response.output_text.delta"))
    assert text == c.of("response.output_text.done")[0]["text"] == "Hello! How can I help?"
    assert c.of("response.content_part.added")[0]["part"]["type"] == "text"
    assert not any(t.startswith("output_audio_buffer") for t in types)
    await asyncio.sleep(0.3)
    assert voiced_s(c.received.frames) == 0.0


async def test_per_response_text_modality_and_instructions(peer: PeerHandle) -> None:
    c = await peer.connect(session=PTT)
    done = await c.request(
        {
            "type": "response.create",
            "response": {
                "output_modalities": ["text"],
                "instructions": 'Say "ready when you are"',
                "metadata": {"topic": "greeting"},
                "conversation": "none",
            },
        },
        "response.done",
    )
    resp = done["response"]
    assert resp["output"][0]["content"][0]["text"] == "ready when you are"
    assert resp["metadata"] == {"topic": "greeting"} and resp["conversation_id"] is None
    assert not c.of("conversation.item.added")  # out-of-band: not added to the conversation


async def test_push_to_talk_turn(peer: PeerHandle) -> None:
    c = await peer.connect(session=PTT)
    assert c.mic is not None
    await c.request({"type": "input_audio_buffer.clear"}, "input_audio_buffer.cleared")
    c.mic.play(tone(1.0, 300))
    await until(lambda: c.mic is not None and c.mic.queued_s == 0, within=10)
    await asyncio.sleep(0.15)
    committed = await c.request(
        {"type": "input_audio_buffer.commit"}, "input_audio_buffer.committed"
    )
    added = await c.wait_for("conversation.item.added")
    item_done = await c.wait_for("conversation.item.done")
    assert added["item"]["id"] == item_done["item"]["id"] == committed["item_id"]
    assert added["item"]["content"] == [{"type": "input_audio", "transcript": None}]
    types = c.types()
    assert types.index("input_audio_buffer.committed") < types.index("conversation.item.added")
    await c.request({"type": "response.create"}, "response.done")
    transcript = c.of("response.output_audio_transcript.done")[0]["transcript"]
    m = re.fullmatch(r"I heard (\d+\.\d) seconds of audio\.", transcript)
    assert m and 1.0 <= float(m.group(1)) <= 1.5, transcript
    stopped = await c.wait_for("output_audio_buffer.stopped", within=15)
    started = c.of("output_audio_buffer.started")[0]
    assert voiced_between(c, started["_t"], stopped["_t"] + 0.2) > 1.0


async def test_server_vad_turn_creates_response(peer: PeerHandle) -> None:
    c = await peer.connect()  # default session: server_vad, create_response, interrupt_response
    assert c.mic is not None
    await asyncio.sleep(0.3)
    c.mic.play(tone(0.6, 250))
    started = await c.wait_for("input_audio_buffer.speech_started", within=5)
    stopped = await c.wait_for("input_audio_buffer.speech_stopped", within=5)
    committed = await c.wait_for("input_audio_buffer.committed")
    assert started["item_id"] == stopped["item_id"] == committed["item_id"]
    span = stopped["audio_end_ms"] - started["audio_start_ms"]
    assert 1100 <= span <= 1700, span  # 300 ms prefix + 600 ms speech + 500 ms silence
    order = c.types()
    assert order.index("input_audio_buffer.speech_stopped") < order.index(
        "input_audio_buffer.committed"
    )
    assert order.index("input_audio_buffer.committed") < order.index("response.created")
    await c.wait_for("response.done")
    transcript = c.of("response.output_audio_transcript.done")[0]["transcript"]
    assert transcript.startswith("I heard ")
    await c.wait_for("output_audio_buffer.stopped", within=15)
    assert voiced_s(c.received.frames) > 1.0


async def test_server_vad_without_create_response(peer: PeerHandle) -> None:
    session = {
        "type": "realtime",
        "audio": {
            "input": {
                "turn_detection": {
                    "type": "server_vad",
                    "create_response": False,
                    "silence_duration_ms": 200,
                }
            }
        },
    }
    c = await peer.connect(session=session)
    assert c.mic is not None
    c.mic.play(tone(0.4, 250))
    await c.wait_for("input_audio_buffer.committed", within=5)
    await asyncio.sleep(0.8)
    assert not c.of("response.created")


async def long_reply(c: Client) -> str:
    c.send(user_text(LONG_TEXT))
    created = await c.request({"type": "response.create"}, "response.created")
    await c.wait_for("output_audio_buffer.started")
    return str(created["response"]["id"])


async def assert_silent_after(peer: PeerHandle, c: Client, t_cleared: float) -> None:
    """Voiced audio stops with the clear: at the peer the track sends no voiced frame after it, and
    at the client nothing voiced arrives once the frames already in flight are through."""
    assert c.call_id is not None
    before = (await peer.call_record(c.call_id))["voiced_frames_out"]
    await asyncio.sleep(0.8)
    after = (await peer.call_record(c.call_id))["voiced_frames_out"]
    assert after == before
    # judged by the amount, not the arrival time: a client held up by a busy machine gets the
    # frames that were in flight later than the event, not more. In flight at most: one frame
    # being encoded at the peer's sender, aiortc's audio jitter buffer at the client (it holds
    # 4 frames: JitterBuffer(capacity=16, prefetch=4)), one being decoded (seen: 0.12 s).
    assert voiced_between(c, t_cleared, time.monotonic()) <= IN_FLIGHT_S
    assert voiced_between(c, t_cleared - 1.0, t_cleared) > 0.2  # it was talking before


async def test_response_cancel_stops_audio_and_truncates(peer: PeerHandle) -> None:
    c = await peer.connect(session=PTT)
    rid = await long_reply(c)
    await asyncio.sleep(0.5)
    mark = len(c.events)
    c.send({"type": "response.cancel"})
    cleared = await c.wait_for("output_audio_buffer.cleared", after=mark)
    assert cleared["response_id"] == rid
    truncated = await c.wait_for("conversation.item.truncated", after=mark)
    done = await c.wait_for("response.done", after=mark)
    assert done["response"]["status"] == "cancelled"
    assert done["response"]["status_details"] == {"type": "cancelled", "reason": "client_cancelled"}
    assert done["response"]["output"][0]["status"] == "incomplete"
    after = [e["type"] for e in c.events[mark:] if e["type"] != "rate_limits.updated"]
    assert after[:3] == [
        "output_audio_buffer.cleared",
        "conversation.item.truncated",
        "response.output_audio.done",
    ]
    assert after[-1] == "response.done"
    heard_ms = truncated["audio_end_ms"]
    assert 400 <= heard_ms <= 1200, heard_ms
    await assert_silent_after(peer, c, cleared["_t"])
    assert not c.of("output_audio_buffer.stopped")
    # The item's transcript is gone (nothing unheard stays in the context).
    got = await c.request(
        {"type": "conversation.item.retrieve", "item_id": truncated["item_id"]},
        "conversation.item.retrieved",
    )
    assert got["item"]["content"][0]["transcript"] == ""


async def test_output_audio_buffer_clear_after_response_done(peer: PeerHandle) -> None:
    c = await peer.connect(session=PTT)
    await long_reply(c)
    await c.wait_for("response.done", within=15)  # generation done, playback still going
    assert not c.of("output_audio_buffer.stopped")
    err = await c.request({"type": "response.cancel"}, "error")
    assert err["error"]["code"] == "response_cancel_not_active"
    mark = len(c.events)
    c.send({"type": "output_audio_buffer.clear"})
    cleared = await c.wait_for("output_audio_buffer.cleared", after=mark)
    truncated = await c.wait_for("conversation.item.truncated", after=mark)
    assert truncated["audio_end_ms"] > 1000
    await assert_silent_after(peer, c, cleared["_t"])
    assert c.call_id is not None
    record = await peer.call_record(c.call_id)
    assert record["client_events"][-2:] == ["response.cancel", "output_audio_buffer.clear"]


async def test_barge_in_with_server_vad(peer: PeerHandle) -> None:
    session = {
        "type": "realtime",
        "audio": {
            "input": {
                "turn_detection": {
                    "type": "server_vad",
                    "create_response": False,
                    "interrupt_response": True,
                }
            }
        },
    }
    c = await peer.connect(session=session)
    assert c.mic is not None
    rid = await long_reply(c)
    await asyncio.sleep(0.4)
    mark = len(c.events)
    c.mic.play(tone(0.5, 250))
    cleared = await c.wait_for("output_audio_buffer.cleared", after=mark, within=5)
    after = [e["type"] for e in c.events[mark:]]
    assert after[:3] == [
        "input_audio_buffer.speech_started",
        "output_audio_buffer.cleared",
        "conversation.item.truncated",
    ]
    done = await c.wait_for("response.done", after=mark)
    assert done["response"]["id"] == rid
    assert done["response"]["status_details"]["reason"] == "turn_detected"
    await c.wait_for("input_audio_buffer.speech_stopped", after=mark)
    await assert_silent_after(peer, c, cleared["_t"])


async def test_function_tool_call_and_continuation(peer: PeerHandle) -> None:
    tool = {
        "type": "function",
        "name": "get_weather",
        "description": "Weather for a place",
        "parameters": {
            "type": "object",
            "properties": {"location": {"type": "string"}},
            "required": ["location"],
        },
    }
    c = await peer.connect(session={**PTT, "tools": [tool], "tool_choice": "auto"})
    c.send(user_text("What's the weather in Paris? Use get_weather."))
    done = await c.request({"type": "response.create"}, "response.done")
    item = done["response"]["output"][0]
    assert item["type"] == "function_call" and item["name"] == "get_weather"
    args_done = c.of("response.function_call_arguments.done")[0]
    deltas = "".join(e["delta"] for e in c.of("response.function_call_arguments.delta"))
    assert deltas == args_done["arguments"] == item["arguments"]
    assert json.loads(args_done["arguments"]) == {"location": "Paris"}
    assert args_done["call_id"] == item["call_id"]
    types = c.types()
    assert (
        types.index("response.output_item.added")
        < types.index("response.function_call_arguments.delta")
        < types.index("response.function_call_arguments.done")
        < types.index("response.output_item.done")
    )
    assert not c.of("output_audio_buffer.started")
    # The client runs the tool and asks for the continuation.
    c.send(
        {
            "type": "conversation.item.create",
            "item": {
                "type": "function_call_output",
                "call_id": item["call_id"],
                "output": json.dumps({"temp_c": 18}),
            },
        }
    )
    mark = len(c.events)
    c.send({"type": "response.create"})
    await c.wait_for("response.done", after=mark)
    transcript = c.of("response.output_audio_transcript.done")[-1]["transcript"]
    assert transcript.startswith("The get weather tool returned") and "18" in transcript
    stopped = await c.wait_for("output_audio_buffer.stopped", after=mark, within=15)
    assert voiced_between(c, c.events[mark]["_t"], stopped["_t"] + 0.2) > 0.5


async def test_tool_not_named_is_not_called(peer: PeerHandle) -> None:
    tool = {"type": "function", "name": "set_alarm", "parameters": {"type": "object"}}
    c = await peer.connect(session={**PTT, "tools": [tool], "output_modalities": ["text"]})
    c.send(user_text("hello"))
    done = await c.request({"type": "response.create"}, "response.done")
    assert done["response"]["output"][0]["type"] == "message"


async def test_max_output_tokens_gives_incomplete(peer: PeerHandle) -> None:
    c = await peer.connect(session={**PTT, "output_modalities": ["text"]})
    c.send(user_text("I like trains"))
    done = await c.request(
        {"type": "response.create", "response": {"max_output_tokens": 2}}, "response.done"
    )
    resp = done["response"]
    assert resp["status"] == "incomplete"
    assert resp["status_details"] == {"type": "incomplete", "reason": "max_output_tokens"}
    assert resp["output"][0]["content"][0]["text"] == "You said:"


async def test_transcription_and_append_over_data_channel(peer: PeerHandle) -> None:
    session = {
        **PTT,
        "audio": {
            "input": {"turn_detection": None, "transcription": {"model": "gpt-4o-mini-transcribe"}}
        },
    }
    c = await peer.connect(session=session, with_mic=False)
    pcm24 = (np.sin(np.arange(24000 // 2) / 24000 * 2 * np.pi * 300) * 8000).astype("<i2")
    c.send(
        {"type": "input_audio_buffer.append", "audio": base64.b64encode(pcm24.tobytes()).decode()}
    )
    committed = await c.request(
        {"type": "input_audio_buffer.commit"}, "input_audio_buffer.committed"
    )
    tr = await c.wait_for("conversation.item.input_audio_transcription.completed")
    assert tr["item_id"] == committed["item_id"]
    assert tr["usage"]["type"] == "duration" and abs(tr["usage"]["seconds"] - 0.5) < 0.01
    err = await c.request({"type": "input_audio_buffer.append", "audio": "!!!"}, "error")
    assert err["error"]["code"] == "invalid_value"


async def test_truncate_item_and_voice_locked_after_audio(peer: PeerHandle) -> None:
    c = await peer.connect(session=PTT)
    c.send(user_text("hello"))
    await c.request({"type": "response.create"}, "response.done")
    await c.wait_for("output_audio_buffer.stopped", within=15)
    item_id = c.of("response.output_item.done")[0]["item"]["id"]
    tr = await c.request(
        {
            "type": "conversation.item.truncate",
            "item_id": item_id,
            "content_index": 0,
            "audio_end_ms": 300,
        },
        "conversation.item.truncated",
    )
    assert tr["audio_end_ms"] == 300
    err = await c.request(
        {
            "type": "conversation.item.truncate",
            "item_id": item_id,
            "content_index": 0,
            "audio_end_ms": 999_999,
        },
        "error",
    )
    assert err["error"]["param"] == "audio_end_ms"
    err = await c.request(
        {
            "type": "session.update",
            "session": {"type": "realtime", "audio": {"output": {"voice": "ash"}}},
        },
        "error",
    )
    assert err["error"]["code"] == "cannot_update_voice"


@pytest.mark.parametrize("peer_config", [PeerConfig(mode="echo")])
async def test_echo_mode_plays_back_the_committed_audio(peer: PeerHandle) -> None:
    c = await peer.connect(session=PTT)
    assert c.mic is not None
    await c.request({"type": "input_audio_buffer.clear"}, "input_audio_buffer.cleared")
    signal = np.concatenate(
        [tone(0.3, 400), silence(0.2), tone(0.3, 900), silence(0.2), tone(0.3, 1500)]
    )
    c.mic.play(signal)
    await until(lambda: c.mic is not None and c.mic.queued_s == 0, within=10)
    # The last frames are still in flight (jitter buffers on the way): let them reach the peer.
    await asyncio.sleep(0.4)
    await c.request({"type": "input_audio_buffer.commit"}, "input_audio_buffer.committed")
    await c.request({"type": "response.create"}, "response.done")
    stopped = await c.wait_for("output_audio_buffer.stopped", within=15)
    assert c.of("response.output_audio_transcript.done")[0]["transcript"] == ""
    started = c.of("output_audio_buffer.started")[0]
    got = c.received.pcm_between(started["_t"] - 0.1, stopped["_t"] + 0.3).astype(np.float64)
    ref = signal.astype(np.float64)
    # The reply is the input again: find it by cross-correlation, then compare the three tones.
    corr = np.correlate(got, ref, mode="valid")
    lag = int(np.argmax(corr))
    seg = got[lag : lag + ref.size]
    ncc = float(np.dot(seg, ref) / (np.linalg.norm(seg) * np.linalg.norm(ref)))
    assert ncc > 0.8, ncc
    for i, freq in enumerate((400, 900, 1500)):
        part = seg[int(i * 0.5 * RATE) : int((i * 0.5 + 0.3) * RATE)]
        peak = np.argmax(np.abs(np.fft.rfft(part))) * RATE / part.size
        assert abs(peak - freq) < 20, (freq, peak)
    assert c.call_id is not None
    record = await peer.call_record(c.call_id)
    audio_ms = record["responses"][0]["audio_ms"]
    assert 1300 <= audio_ms <= 2000, audio_ms  # the committed buffer (signal + what followed)


@pytest.mark.parametrize("peer_config", [PeerConfig(mode="loopback")])
async def test_loopback_mode_returns_audio_at_once(peer: PeerHandle) -> None:
    c = await peer.connect(session=PTT)
    assert c.mic is not None
    await asyncio.sleep(0.3)
    t0 = time.monotonic()
    c.mic.play(tone(0.5, 500))
    await until(
        lambda: any(
            t > t0 and rms(f) > VOICED_RMS
            for t, f in zip(c.received.times, c.received.frames, strict=True)
        ),
        3,
    )
    first = next(
        t
        for t, f in zip(c.received.times, c.received.frames, strict=True)
        if t > t0 and rms(f) > VOICED_RMS
    )
    assert first - t0 < 0.3
    await asyncio.sleep(0.7)
    assert 0.4 <= voiced_between(c, t0, time.monotonic()) <= 0.62
    # the peer's receiver hands packets on as they come in order (no 80 ms hold)
    assert c.call_id is not None
    record = await peer.call_record(c.call_id)
    buffer = record["receive_buffer"]
    assert buffer["kind"] == "rtedge"
    assert buffer["released"] >= 50  # 1.3 s of 20 ms packets since the call came up
    assert buffer["skipped"] == 0


IDLE_5S = {
    "type": "realtime",
    "audio": {"input": {"turn_detection": {"type": "server_vad", "idle_timeout_ms": 5000}}},
}


async def test_server_vad_idle_timeout_prompts_the_user(peer: PeerHandle) -> None:
    c = await peer.connect(session=IDLE_5S)
    c.send(user_text("hello"))
    await c.request({"type": "response.create"}, "response.done")
    stopped = await c.wait_for("output_audio_buffer.stopped", within=15)
    timeout = await c.wait_for("input_audio_buffer.timeout_triggered", within=8)
    assert 4.8 <= timeout["_t"] - stopped["_t"] <= 6.0
    assert 4900 <= timeout["audio_end_ms"] - timeout["audio_start_ms"] <= 5100
    committed = await c.wait_for("input_audio_buffer.committed", item_id=timeout["item_id"])
    assert committed
    await c.wait_for("response.done", after=c.events.index(timeout))
    assert c.of("response.output_audio_transcript.done")[-1]["transcript"] == "Are you still there?"


async def test_idle_timeout_runs_from_the_end_of_the_reply_when_input_is_held_up(
    peer: PeerHandle,
) -> None:
    # The client stops sending while the reply plays and catches up after it (a busy client;
    # a busy peer looks the same): at the reply's end the input timeline lags the clock.
    c = await peer.connect(session=IDLE_5S)
    assert c.mic is not None
    c.send(user_text("hello"))
    c.send({"type": "response.create"})
    await c.wait_for("output_audio_buffer.started", within=15)
    c.mic.hold()
    stopped = await c.wait_for("output_audio_buffer.stopped", within=15)
    await asyncio.sleep(0.5)
    c.mic.release()
    timeout = await c.wait_for("input_audio_buffer.timeout_triggered", within=8)
    assert 4.8 <= timeout["_t"] - stopped["_t"] <= 6.0  # not early by the time held up
    assert 5000 <= timeout["audio_end_ms"] - timeout["audio_start_ms"] < 5000 + 20  # one frame
