"""Helpers of the voice frameworks' tests (each framework, unmodified, against a real server).

The frameworks bring packages that clash with the test extra's (pipecat pins soxr and
protobuf below it) and are tested with a newer ``openai``, so they live in a venv of their
own (the ``frameworks`` extra; ``.ci/run`` makes it and runs ``pytest -m frameworks
tests/frameworks`` there with ``VOXWIRE_FRAMEWORKS=required``). In any other venv these
tests are skipped; where they are required, a missing framework fails.
"""

from __future__ import annotations

import importlib
import os
import wave
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

KEY = "fw-test-key"
VAD_DEV = Path(__file__).resolve().parents[3] / "shared" / "data" / "vad-dev"


def require(module: str) -> ModuleType:
    """The framework's module, or a skip (a failure where the frameworks are required)."""
    try:
        return importlib.import_module(module)
    except ImportError as e:
        msg = (
            f"{module} is not installed ({e}): the framework tests run in a venv of their own "
            "with pip install '.[frameworks]' (.ci/run makes it)"
        )
        if os.environ.get("VOXWIRE_FRAMEWORKS") == "required":
            pytest.fail(msg)
        pytest.skip(msg, allow_module_level=True)


def speech_24k() -> bytes:
    """One human turn from vad-dev (clean.wav, 11.3-17.0 s: speech 12.94-15.19 s, then
    silence), as PCM16 mono at 24 kHz, followed by 5 s of digital silence: a live microphone
    goes on sending after the user stops, and semantic_vad (the Agents SDK's default turn
    detection) may wait up to 2 s at eagerness auto (4 s at low) before it ends a turn it
    judges unfinished."""
    if not VAD_DEV.exists():
        pytest.skip("../shared/data/vad-dev is not beside the repo")
    import voxwire

    with wave.open(str(VAD_DEV / "clean.wav")) as w:
        x16 = np.frombuffer(w.readframes(w.getnframes()), np.int16)
    x = voxwire.resample(x16[11300 * 16 : 17000 * 16], 16000, 24000)
    x = np.concatenate([x, np.zeros(5 * 24000, np.int16)])
    return x.astype("<i2").tobytes()
