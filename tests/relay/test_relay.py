"""``rtedge relay`` as an owner runs it: a real process holding the key, devices with tokens.

A GPT-Live turn through the relay reaches the speaker; a revoked token is refused (401) and the
device shows ``auth_failed``; the relay checks Host and Origin like every local HTTP route."""

from __future__ import annotations

import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from rtedge.demo import speech_pcm
from rtedge.relay import TokenBook
from tests.support import Daemon, Peer, Proc, base_env, free_port, http, voiced_seconds, wait_for

OWNER_KEY = "sk-owner-key-held-by-the-relay-only"


def post(url: str, headers: dict[str, str]) -> int:
    req = urllib.request.Request(url, data=b"{}", method="POST", headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


def relay_cmd(tokens: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "rtedge", "relay", "--tokens", str(tokens), *args],
        env=base_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.fixture
def relay(tmp_path: Path, peer_factory: Callable[..., Peer]) -> Iterator[tuple[str, Path, Peer]]:
    peer = peer_factory("--api-key", OWNER_KEY)  # the peer takes the owner's key, nothing else
    key_file = tmp_path / "owner.key"
    key_file.write_text(OWNER_KEY + "\n")
    key_file.chmod(0o600)
    tokens = tmp_path / "tokens"
    port = free_port()
    argv = [
        sys.executable,
        "-m",
        "rtedge",
        "relay",
        "--listen",
        f"127.0.0.1:{port}",
        "--tokens",
        str(tokens),
        "--key-file",
        str(key_file),
        "--upstream",
        peer.url,
    ]
    proc = Proc("relay", argv, base_env(), tmp_path / "relay.log")
    url = f"http://127.0.0.1:{port}"
    wait_for(lambda: http("GET", f"{url}/")[0] == 404, 20, "relay listening")
    try:
        yield url, tokens, peer
    finally:
        proc.terminate()


def test_tokens_are_kept_hashed_and_revocable(tmp_path: Path) -> None:
    book = TokenBook(tmp_path / "tokens")
    token = book.mint("kiosk-1")
    assert token not in (tmp_path / "tokens").read_text()
    assert book.device(f"Bearer {token}") == "kiosk-1"
    assert book.device("Bearer rtr_wrong") is None and book.device(token) is None
    assert book.revoke("kiosk-1")
    assert book.device(f"Bearer {token}") is None


def test_live_turn_through_the_relay_and_a_revoked_token_fails_auth(
    relay: tuple[str, Path, Peer], daemon_factory: Callable[..., Daemon]
) -> None:
    url, tokens, peer = relay
    token = relay_cmd(tokens, "--mint", "kiosk-1").stdout.strip()
    assert token.startswith("rtr_")
    daemon = daemon_factory(
        peer.calls_url,
        config={"realtime": {"provider": "live", "relay_url": url, "api_key": token}},
    )
    daemon.say(speech_pcm("What is the weather like today?"))
    daemon.wait_turn("speaking", 15)
    daemon.wait_turn("idle", 30)
    assert voiced_seconds(daemon.alsa.speaker_pcm()) > 0.5
    call = peer.active_call()
    assert call is not None and call["session_id"].startswith("live_")
    # A second device whose token the owner revoked: 401 from the relay, auth_failed shown.
    stolen = relay_cmd(tokens, "--mint", "kiosk-2").stdout.strip()
    assert relay_cmd(tokens, "--revoke", "kiosk-2").returncode == 0
    other = daemon_factory(
        peer.calls_url,
        config={"realtime": {"provider": "live", "relay_url": url, "api_key": stolen}},
        wait=False,
    )

    def refused() -> bool:
        code, body = http("GET", f"{other.url}/status")
        return code == 200 and body["connection"] == "auth_failed"

    wait_for(refused, 20, "auth_failed")
    assert "HTTP 401" in (other.status()["last_error"] or "")
    assert daemon.status()["connection"] == "connected"  # kiosk-1 unaffected


def test_relay_checks_host_and_origin(relay: tuple[str, Path, Peer]) -> None:
    url, tokens, _ = relay
    token = TokenBook(tokens).mint("kiosk-1")
    auth = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    target = f"{url}/v1/live/sessions"
    assert post(target, {**auth, "Host": "evil.example"}) == 403
    assert post(target, {**auth, "Origin": "http://evil.example"}) == 403
    assert post(target, auth) == 400  # through to the service, which refuses an empty create
    assert post(target, {"Content-Type": "application/json"}) == 401  # no token


def test_realtime_unified_create_through_the_relay(
    relay: tuple[str, Path, Peer], daemon_factory: Callable[..., Daemon]
) -> None:
    url, tokens, peer = relay
    token = TokenBook(tokens).mint("kiosk-rt")
    daemon = daemon_factory(
        peer.calls_url,
        config={"realtime": {"signaling": "unified", "relay_url": url, "api_key": token}},
    )
    daemon.say(speech_pcm("Hello there."))
    daemon.wait_turn("speaking", 15)
    call = peer.active_call()
    assert call is not None and call["call_id"].startswith("rtc_")
    assert daemon.status()["connection"] == "connected"
