"""A real browser as the client: headless Chromium runs a page written like the browser code in
OpenAI's WebRTC guide (fake microphone, data channel ``oai-events``, raw SDP POST with an ephemeral
key minted by its own backend through ``client_secrets``), from another origin than the peer.
It completes a text turn and a push-to-talk turn and reports what it heard (``getStats()``
inbound audio energy) by POSTing to the page's server."""

from __future__ import annotations

import asyncio
import json
import wave
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
import pytest
from aiohttp import web

from rtedge.peer import PeerConfig
from tests.browser import CHROMIUM, chromium
from tests.peer.conftest import PeerHandle
from tests.poll import scaled
from tests.ports import free_port

PAGE = """<!doctype html>
<html><body><script>
const PEER = "%(peer)s";
const log = [];
const report = (body) => fetch("/report", {method: "POST", body: JSON.stringify(body)});
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function energy(pc) {
  let total = 0;
  (await pc.getStats()).forEach((s) => {
    if (s.type === "inbound-rtp" && s.kind === "audio") total = s.totalAudioEnergy || 0;
  });
  return total;
}

async function init() {
  // Get an ephemeral key from our own server (which calls /v1/realtime/client_secrets).
  const tokenResponse = await fetch("/token");
  const data = await tokenResponse.json();
  const EPHEMERAL_KEY = data.value;

  // Create a peer connection
  const pc = new RTCPeerConnection();

  // Set up to play remote audio from the model
  const audioElement = document.createElement("audio");
  audioElement.autoplay = true;
  pc.ontrack = (e) => (audioElement.srcObject = e.streams[0]);

  // Add local audio track for microphone input in the browser
  const ms = await navigator.mediaDevices.getUserMedia({
    audio: {echoCancellation: false, noiseSuppression: false, autoGainControl: false},
  });
  pc.addTrack(ms.getTracks()[0]);

  // Set up data channel for sending and receiving events
  const dc = pc.createDataChannel("oai-events");
  const waiters = [];
  const events = [];
  dc.addEventListener("message", (e) => {
    const event = JSON.parse(e.data);
    events.push(event);
    log.push(event.type);
    for (const w of waiters.slice()) {
      if (w.type === event.type) { waiters.splice(waiters.indexOf(w), 1); w.resolve(event); }
    }
  });
  const next = (type) => new Promise((resolve, reject) => {
    waiters.push({type, resolve});
    setTimeout(() => reject(new Error("timeout waiting for " + type)), 20000);
  });
  const send = (event) => dc.send(JSON.stringify(event));
  const created = next("session.created");

  // Start the session using the Session Description Protocol (SDP)
  const offer = await pc.createOffer();
  await pc.setLocalDescription(offer);
  const sdpResponse = await fetch(`${PEER}/v1/realtime/calls`, {
    method: "POST",
    body: offer.sdp,
    headers: {Authorization: `Bearer ${EPHEMERAL_KEY}`, "Content-Type": "application/sdp"},
  });
  const location = sdpResponse.headers.get("Location");
  const answer = {type: "answer", sdp: await sdpResponse.text()};
  await pc.setRemoteDescription(answer);
  await created;

  // Turn 1: text in, spoken answer out.
  let e0 = await energy(pc);
  let started = next("output_audio_buffer.started");
  let stopped = next("output_audio_buffer.stopped");
  send({type: "conversation.item.create", item: {type: "message", role: "user",
        content: [{type: "input_text", text: "What is 2 plus 3?"}]}});
  send({type: "response.create"});
  await started;
  const eStart = await energy(pc);
  await stopped;
  await sleep(300);
  const eText = (await energy(pc)) - eStart;
  const textTranscript = events.filter((e) => e.type === "response.output_audio_transcript.done")
    .map((e) => e.transcript)[0];

  // Idle: silence comes in (the track always flows), with no energy to speak of.
  e0 = await energy(pc);
  await sleep(1000);
  const eIdle = (await energy(pc)) - e0;

  // Turn 2: push-to-talk with the fake microphone, as in the guide's recipe.
  send({type: "session.update", session: {type: "realtime",
        audio: {input: {turn_detection: null}}}});
  await next("session.updated");
  send({type: "input_audio_buffer.clear"});
  await next("input_audio_buffer.cleared");
  await sleep(1500);                              // "holding the button"
  const committed = next("input_audio_buffer.committed");
  send({type: "input_audio_buffer.commit"});
  await committed;
  started = next("output_audio_buffer.started");
  stopped = next("output_audio_buffer.stopped");
  send({type: "response.create"});
  await started;
  const e2 = await energy(pc);
  await stopped;
  await sleep(300);
  const ePtt = (await energy(pc)) - e2;
  const pttTranscript = events.filter((e) => e.type === "response.output_audio_transcript.done")
    .map((e) => e.transcript)[1];
  await report({ok: true, callId: location.split("/").pop(), textTranscript, pttTranscript,
                eText, eIdle, ePtt, log});
  pc.close();
}
init().catch((err) => report({ok: false, error: String(err), log}));
</script></body></html>
"""


def write_mic_wav(path: Path) -> None:
    t = np.arange(48000 * 3) / 48000
    pcm = (np.sin(2 * np.pi * 330 * t) * 0.4 * 32767).astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(48000)
        w.writeframes(pcm.tobytes())


@pytest.mark.browser
@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed")
@pytest.mark.parametrize("peer_config", [PeerConfig(api_keys=("sk-backend",))])
async def test_chromium_text_and_push_to_talk_turns(peer: PeerHandle, tmp_path: Path) -> None:
    result: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()

    async def page(request: web.Request) -> web.Response:
        return web.Response(text=PAGE % {"peer": peer.url}, content_type="text/html")

    async def token(request: web.Request) -> web.Response:
        # The app's backend: the standard key never reaches the browser.
        async with (
            aiohttp.ClientSession() as http,
            http.post(
                f"{peer.url}/v1/realtime/client_secrets",
                json={
                    "session": {
                        "type": "realtime",
                        "instructions": "Be brief.",
                        # push-to-talk app: no server VAD (the fake mic never stops)
                        "audio": {"input": {"turn_detection": None}},
                    }
                },
                headers={"Authorization": "Bearer sk-backend"},
            ) as resp,
        ):
            return web.json_response(await resp.json(), status=resp.status)

    async def report(request: web.Request) -> web.Response:
        if not result.done():
            result.set_result(json.loads(await request.text()))
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_get("/page.html", page)
    app.router.add_get("/token", token)
    app.router.add_post("/report", report)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    mic = tmp_path / "mic.wav"
    write_mic_wav(mic)
    media = (
        "--use-fake-ui-for-media-stream",
        "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-audio-capture={mic}",
        "--autoplay-policy=no-user-gesture-required",
        "--allow-loopback-in-peer-connection",
    )
    try:
        async with chromium(f"http://127.0.0.1:{port}/page.html", *media):
            got = await asyncio.wait_for(result, scaled(60))
    finally:
        await runner.cleanup()
    assert got["ok"], got
    assert got["textTranscript"] == "2 plus 3 is 5."
    assert got["pttTranscript"].startswith("I heard ")
    heard = float(got["pttTranscript"].split()[2])
    assert 1.2 <= heard <= 2.5, got["pttTranscript"]  # the 1.5 s "held" plus commit latency
    # Audio heard back: energy while the reply played, next to nothing while idle.
    assert got["eText"] > 0.05 and got["ePtt"] > 0.05, got
    assert got["eIdle"] < got["eText"] / 20, got
    log = got["log"]
    assert log[0] == "session.created" and "response.done" in log
    record = await peer.call_record(got["callId"])
    assert record["label"] == "oai-events"
    ce = record["client_events"]
    assert (
        ce.index("input_audio_buffer.clear")
        < ce.index("input_audio_buffer.commit")
        < len(ce) - 1 - ce[::-1].index("response.create")
    )
    assert record["rtp_frames_in"] > 100  # the fake microphone reached the peer
