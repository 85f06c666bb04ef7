"""The peer's settings, shared by the HTTP layer, every call and the CLI."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Mode = Literal["assistant", "echo", "loopback"]
Profile = Literal["openai", "minimal"]


@dataclass(slots=True)
class PeerConfig:
    """Everything ``create_app`` needs. Defaults are what ``rtedge peer`` uses."""

    mode: Mode = "assistant"
    profile: Profile = "openai"
    """``openai``: OpenAI's GA service. ``minimal``: an independent server that speaks the
    Realtime API over WebRTC with less (``rtedge.peer.minimal``): no ``output_audio_buffer.*``,
    legacy item events, no client secrets or multipart, its own VAD whatever
    ``turn_detection`` says, ``input_audio_buffer.clear`` refused, ``DELETE`` hangup, no RTP
    between replies."""
    """``assistant``: short spoken replies; ``echo``: each response plays back the last committed
    input audio exactly (on GPT-Live: the user's turn as the peer's VAD heard it); ``loopback``:
    every received audio frame is sent straight back (no turns), for measuring the bare audio
    loop."""
    api_keys: tuple[str, ...] = ()
    """Accepted standard keys. Empty: any non-empty key is accepted (ephemeral ``ek_`` keys are
    always checked against the ones this peer minted)."""
    max_session_s: float = 3600.0
    """Session cap; at the cap the peer sends ``session_expired`` and closes, as OpenAI does."""
    image_fps: float = 25.0
    """Avatar frame rate when the session asks for ``image``."""
    image_size: int = 256
    """Avatar frame edge in pixels (JPEG, square)."""
    ice_hosts: tuple[str, ...] | None = None
    """Host addresses aioice gathers; None keeps aioice's own discovery."""
    jitter_buffer: Literal["rtedge", "aiortc"] = "rtedge"
    """Receive buffer for the client's audio: ``rtedge`` releases each packet as soon as it is in
    order (as rtedge's own receiver does); ``aiortc`` keeps aiortc's, which holds every frame
    80 ms, for measuring a service with that receive path."""
    max_body_bytes: int = 256 * 1024
    """Largest accepted HTTP request body (413 beyond)."""
    max_pending_calls: int = 16
    """Calls answered but not yet connected at most; more offers get 429 with Retry-After
    (each holds a port, a DTLS context and timers until ``connect_timeout_s``)."""
    connect_timeout_s: float = 30.0
    """A call whose peer connection is not up this long after the answer is torn down."""
    generation_lead_s: float = 1.0
    """How far response generation may run ahead of the audio being sent. OpenAI generates faster
    than real time, so ``response.done`` arrives before playback ends; a bounded lead keeps that
    shape while leaving time to cancel a reply that is still generating."""
    max_input_buffer_s: float = 120.0
    """Input audio kept while uncommitted (oldest dropped beyond)."""
    ended_calls_kept: int = 50
    """Ended calls still listed by ``GET /_rtedge/calls``."""
    voice_engine: Literal["auto", "espeak", "tones"] = "auto"
    """``auto`` uses espeak-ng when installed, else the tone voice."""
    default_model: str = "gpt-realtime-2"
    default_instructions: str = "You are the rtedge local peer, a test voice assistant."
    live_usage_interval_s: float = 60.0
    """GPT-Live: seconds between ``session.usage.updated`` events (about a minute at OpenAI)."""
    live_start_delay_s: float = 0.0
    """GPT-Live: hold ``session.started`` this long after the channel opens (a slow or stuck
    service, for the device's startup timeout)."""
    live_silence_ms: int = 500
    """GPT-Live: silence after the user's speech before the peer's model takes its turn."""
    live_delegate: Literal["auto", "client", "tool"] = "auto"
    """GPT-Live: ``client`` delegates every user turn of a client-delegation session to the
    client (``session.delegation.created`` target client) and waits for its commentary or
    thinking; ``tool`` makes every turn of a Responses-delegation session call its first
    function tool (``tool_choice`` ``auto`` treated as ``required``); ``auto``: neither."""
