"""The device's ears and mouth, as one object the session core drives.

Capture thread (gated by ``talking``, Opus-encoded there) -> ``call_soon_threadsafe`` -> every
live ``MicTrack``.
``play(track)`` -> ``SpeakerSink`` -> bounded buffer -> playback thread -> speaker.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import Callable
from typing import Literal

import numpy as np
from aiortc.mediastreams import MediaStreamTrack

from rtedge.audio.alsa import OpenPcm, PcmParams
from rtedge.audio.capture import CaptureWorker
from rtedge.audio.echo import ReferenceTap
from rtedge.audio.frontend import Frontend, needs_frontend
from rtedge.audio.handsfree_gate import GateEvent
from rtedge.audio.opus import MicEncoder, silence_packet
from rtedge.audio.playback import PlaybackWorker
from rtedge.audio.speaking import SpeakingDetector, VoiceWatch
from rtedge.audio.tracks import FRAME_SAMPLES, MicTrack, SpeakerSink
from rtedge.media.dsp import WEBRTC_RATE, Int16Array, earcon_samples
from rtedge.settings import AudioSettings
from rtedge.settings_handsfree import WakeSettings
from rtedge.state import State

log = logging.getLogger(__name__)

LEVEL_INTERVAL_S = 0.1
#: Capture ring: 16 periods (320 ms at 20 ms), so a late thread does not overrun. A deep
#: capture ring costs no latency (each period is read as soon as it is there); an overrun
#: loses audio and moves the echo the canceller has locked on to.
CAPTURE_PERIODS = 16
PLAYBACK_PERIODS = 2  # playback ring: double buffering, the least latency that is glitch-free


class AudioPipeline:
    """ALSA microphone and speaker for one appliance; outlives calls (one ``mic_track()`` and
    one ``play()`` per call)."""

    def __init__(
        self,
        settings: AudioSettings,
        state: State,
        *,
        hands_free: bool = False,
        open_pcm: OpenPcm | None = None,
        flush_holdoff_s: float = 0.5,
        wake: WakeSettings | None = None,
    ) -> None:
        self.settings = settings
        self.state = state
        self.hands_free = hands_free
        self.flush_holdoff_s = flush_holdoff_s
        self._output_held = False
        self._talking = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tracks: list[MicTrack] = []
        self._sinks: list[SpeakerSink] = []
        self._mic_peak = 0.0
        # used by the capture thread only
        bitrate, complexity = settings.mic_bitrate_kbps * 1000, settings.mic_opus_complexity
        self._encoder = MicEncoder(bitrate, complexity)
        self._zeros: Int16Array = np.zeros(FRAME_SAMPLES, dtype=np.int16)
        self._encoder_live = False  # the encoder's last input was the microphone
        self._silence_packet = silence_packet(bitrate, complexity)
        self._levels_task: asyncio.Task[None] | None = None
        rate = settings.sample_rate
        period = rate * settings.period_ms // 1000
        playback_period = rate * settings.playback_period_ms // 1000
        self.capture = CaptureWorker(
            PcmParams(settings.capture_device, rate, settings.channels, period, CAPTURE_PERIODS),
            on_period=self._from_capture_thread,
            on_status=lambda ok, detail: self._status_from_thread("capture", ok, detail),
            out_rate=WEBRTC_RATE,
            out_frames=FRAME_SAMPLES,
            reopen_initial_s=settings.reopen_initial_s,
            reopen_max_s=settings.reopen_max_s,
            open_pcm=open_pcm,
        )
        self.playback = PlaybackWorker(
            PcmParams(
                settings.playback_device,
                rate,
                settings.playback_channels,
                playback_period,
                PLAYBACK_PERIODS,
            ),
            latency_frames=rate * settings.playback_latency_ms // 1000,
            volume=settings.volume,
            on_status=lambda ok, detail: self._status_from_thread("playback", ok, detail),
            reopen_initial_s=settings.reopen_initial_s,
            reopen_max_s=settings.reopen_max_s,
            open_pcm=open_pcm,
        )
        #: Voice at the speaker, judged from ``speaker_level`` as the remote audio is handed over.
        self.speaking = SpeakingDetector()
        self.voice = VoiceWatch(self.speaking, self.speaker_level, self.playback.buffered_frames)
        #: Echo cancellation, wake word and the hands-free gate (capture thread), when asked.
        self.frontend: Frontend | None = None
        #: Called on the loop with each hands-free gate event (rtedge.controls.handsfree).
        self.on_gate_event: Callable[[GateEvent], None] | None = None
        if needs_frontend(settings, wake):
            tap = ReferenceTap(rate, settings.playback_channels) if settings.echo_cancel else None
            self.playback.tap = tap
            self.frontend = Frontend(
                settings,
                wake,
                tap=tap,
                period_frames=FRAME_SAMPLES,
                on_event=self._gate_event_from_thread,
            )
        self._earcons = {
            name: earcon_samples(name, rate=rate, channels=settings.playback_channels)
            for name in ("press", "release")
        }

    # ---- lifecycle --------------------------------------------------------------------------

    async def start(self) -> None:
        """Start both device threads; missing devices are retried in the background."""
        self._loop = asyncio.get_running_loop()
        self.capture.start()
        self.playback.start()
        if self._levels_task is None:
            self._levels_task = asyncio.create_task(self._publish_levels(), name="audio-levels")

    async def stop(self) -> None:
        """Stop the threads (joined within about a second) and end the mic tracks."""
        self.voice.stop()
        if self._levels_task is not None:
            self._levels_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._levels_task
            self._levels_task = None
        for track in list(self._tracks):
            track.stop()
        await asyncio.gather(
            asyncio.to_thread(self.capture.stop, 1.0), asyncio.to_thread(self.playback.stop, 1.0)
        )

    def heartbeats(self) -> dict[str, Callable[[], float]]:
        """Per audio thread, a callable giving ``time.monotonic()`` of its last progress (for
        the systemd watchdog: a thread stuck in the driver stops moving)."""
        capture, playback = self.capture, self.playback
        return {"capture": lambda: capture.last_beat, "playback": lambda: playback.last_beat}

    # ---- microphone -------------------------------------------------------------------------

    @property
    def talking(self) -> bool:
        """Gate for the microphone: while False (and not hands-free) the tracks send silence."""
        return self._talking

    @talking.setter
    def talking(self, value: bool) -> None:
        self._talking = bool(value)

    def mic_track(self) -> MediaStreamTrack:
        """A fresh track for a new call; it ends when stopped or when the pipeline stops."""
        track = MicTrack(
            silence=self._silence_packet,
            capture_live=lambda: self.capture.ok,
            on_drop=lambda n: self.state.count_drop("mic", n),
            on_stop=self._forget_track,
        )
        self._tracks.append(track)
        return track

    def _forget_track(self, track: MicTrack) -> None:
        with contextlib.suppress(ValueError):
            self._tracks.remove(track)

    def _from_capture_thread(self, samples: Int16Array, level: float) -> None:
        loop = self._loop
        if loop is None:
            return
        # The gate is read here, as the period is captured. Nothing is encoded while no call
        # has a track (between calls), nor while the button is up (most of a device's day):
        # the ready-made silent packet goes out instead, after one period of zeros that carries
        # the encoder's look-ahead (the last 6.5 ms of speech). The next press starts on a new
        # encoder, made now rather than at the press (see MicEncoder).
        live = self._talking or self.hands_free
        periods = [samples]
        if self.frontend is not None:
            # cleaned audio; a hands-free turn opened by the wake word or by speech opens it
            periods, gate_open = self.frontend.process(samples)
            live = live or gate_open
        for period in periods:
            packet = b""
            if self._tracks:
                if live:
                    packet = self._encoder.encode(period)
                elif self._encoder_live:
                    packet = self._encoder.encode(self._zeros)
                    self._encoder = MicEncoder(self._encoder.bitrate, self._encoder.complexity)
                else:
                    packet = self._silence_packet
                self._encoder_live = live
            with contextlib.suppress(RuntimeError):  # loop closed during shutdown
                loop.call_soon_threadsafe(self._on_mic, packet, level, live)

    def _gate_event_from_thread(self, event: GateEvent) -> None:
        loop, listener = self._loop, self.on_gate_event
        if loop is None or listener is None:
            return
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(listener, event)

    def _on_mic(self, packet: bytes, level: float, live: bool) -> None:
        self._mic_peak = max(self._mic_peak, level)
        for track in self._tracks:
            track.push(packet, live)

    def _status_from_thread(self, name: str, ok: bool, detail: str) -> None:
        loop = self._loop
        if loop is None:
            return
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(self.state.set_device, name, ok, detail)

    # ---- speaker ----------------------------------------------------------------------------

    async def play(self, track: MediaStreamTrack) -> None:
        """Drain ``track`` into the speaker until it ends or this is cancelled. Always drains,
        also while the speaker is missing (the audio is then discarded at real-time pace)."""
        sink = SpeakerSink(
            track,
            rate=self.settings.sample_rate,
            channels=self.settings.playback_channels,
            push=self._to_speaker,
            holdoff_s=self.flush_holdoff_s,
        )
        sink.held = self._output_held
        self._sinks.append(sink)
        try:
            await sink.run()
        finally:
            self._sinks.remove(sink)

    def _to_speaker(self, samples: Int16Array) -> None:
        dropped = self.playback.push(samples)
        self.voice.frame()
        if dropped:
            period = self.playback.params.period_frames
            self.state.count_drop("playback", math.ceil(dropped / period))

    def flush(self, quiet_s: float = 0.0, holdoff_s: float | None = None) -> None:
        """Barge-in: empty our buffer now and the device's within one period; audio of the
        cancelled response still in flight is discarded until the remote stream goes quiet
        (for ``quiet_s``; at most ``holdoff_s``, default ``flush_holdoff_ms``)."""
        self.playback.flush()
        self.speaking.reset()
        for sink in self._sinks:
            sink.mute_in_flight(quiet_s, holdoff_s)

    def hold_output(self, held: bool) -> None:
        """GPT-Live barge-in (no cancel exists there): while held, the service's audio is
        discarded; once released it stays muted until the stream goes quiet (``flush``)."""
        self._output_held = held
        for sink in self._sinks:
            sink.held = held
            if not held:
                sink.mute_in_flight()

    def earcon(self, name: Literal["press", "release"]) -> None:
        """A short local sound mixed into the speaker only (never sent to the service)."""
        if self.settings.earcons:
            self.playback.add_earcon(self._earcons[name])

    def speaker_level(self) -> float:
        """RMS (0..1) of the remote audio at the playback position (earcons excluded)."""
        span = self.playback.span_at(self.playback.played_frames())
        return span.level if span is not None else 0.0

    def played_seconds(self) -> float:
        """Seconds of audio the speaker has played, silence included (monotonic)."""
        return self.playback.played_frames() / self.settings.sample_rate

    def speech_onset(self) -> float | None:
        """``played_seconds()`` where the current non-silent run began; None while silent."""
        span = self.playback.span_at(self.playback.played_frames())
        if span is None or span.run_start is None:
            return None
        return span.run_start / self.settings.sample_rate

    # ---- levels -----------------------------------------------------------------------------

    async def _publish_levels(self) -> None:
        while True:
            await asyncio.sleep(LEVEL_INTERVAL_S)
            mic, self._mic_peak = self._mic_peak, 0.0
            self.state.update(mic_level=round(mic, 3), speaker_level=round(self.speaker_level(), 3))


__all__ = ["AudioPipeline"]
