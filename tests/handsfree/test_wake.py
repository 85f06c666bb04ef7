"""The bundled wake-word models on piper speech: each wake phrase is one detection, plain
sentences none."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("pymicro_wakeword")

from rtedge.audio.wake import WakeWord, library_status  # noqa: E402
from rtedge.media.dsp import Converter  # noqa: E402
from rtedge.settings_handsfree import WakeSettings  # noqa: E402
from tests.handsfree.speech import NEGATIVE_SENTENCES, WAKE_PHRASES, speech  # noqa: E402


def feed(ww: WakeWord, pcm48: np.ndarray) -> list[float]:
    """Seconds (audio time) of each detection, fed in 20 ms periods as the capture thread does."""
    conv = Converter(48000, 1, 16000, 1)
    hits = []
    for i in range(0, pcm48.size - 959, 960):
        if ww.process(conv.convert(pcm48[i : i + 960])):
            hits.append(i / 48000)
    return hits


def gap(seconds: float) -> np.ndarray:
    return np.zeros(int(seconds * 48000), dtype=np.int16)


def test_each_wake_phrase_is_one_detection() -> None:
    ww = WakeWord(WakeSettings(model="hey_jarvis"))
    audio = np.concatenate([np.concatenate([gap(1.0), speech(p)]) for p in WAKE_PHRASES])
    hits = feed(ww, np.concatenate([audio, gap(1.0)]))
    assert len(hits) == len(WAKE_PHRASES), hits
    assert ww.phrase == "Hey Jarvis"


def test_plain_sentences_never_wake_any_model() -> None:
    audio = np.concatenate([np.concatenate([gap(0.5), speech(s)]) for s in NEGATIVE_SENTENCES])
    for model in ("hey_jarvis", "okay_nabu", "alexa"):
        assert feed(WakeWord(WakeSettings(model=model)), audio) == [], model


def test_okay_nabu_phrase_wakes_the_default_model() -> None:
    ww = WakeWord(WakeSettings())
    pcm = np.concatenate([gap(0.5), speech("Okay Nabu, play some music."), gap(1)])
    assert len(feed(ww, pcm)) == 1


def test_threshold_override_and_a_model_by_path(tmp_path: Path) -> None:
    import pymicro_wakeword

    models = Path(pymicro_wakeword.__file__).parent / "models"
    shutil.copy(models / "hey_jarvis.tflite", tmp_path / "mine.tflite")
    config = json.loads((models / "hey_jarvis.json").read_text())
    config["model"] = "mine.tflite"
    (tmp_path / "mine.json").write_text(json.dumps(config))
    pcm = np.concatenate([gap(0.5), speech(WAKE_PHRASES[0]), gap(1.0)])
    assert len(feed(WakeWord(WakeSettings(model=str(tmp_path / "mine.json"))), pcm)) == 1
    strict = WakeWord(WakeSettings(model="hey_jarvis", threshold=0.999999))
    assert strict.threshold == pytest.approx(0.999999)
    assert feed(strict, pcm) == []
    quick = WakeWord(WakeSettings(model="hey_jarvis", sliding_window=1))
    assert quick._ww.sliding_window_size == 1
    assert len(feed(quick, pcm)) == 1


def test_refractory_is_audio_time() -> None:
    ww = WakeWord(WakeSettings(model="hey_jarvis", refractory_s=30.0))
    phrase = speech(WAKE_PHRASES[1])
    hits = feed(ww, np.concatenate([gap(0.5), phrase, gap(1.0), phrase, gap(1.0)]))
    assert len(hits) == 1


def test_library_status_reports_what_loads() -> None:
    status = library_status()
    assert status["wake"].startswith("ok") and status["aec"].startswith("ok")
    assert status["vad"].startswith("ok")
