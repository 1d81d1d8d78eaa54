"""A bundled speech clip, for the demo and the tests.

``hello.wav``: a 4.6 s English sentence at 24 kHz mono PCM16, synthesised with eSpeak NG
(see THIRD_PARTY_NOTICES), with 50 ms of silence kept at each end.
"""

from __future__ import annotations

from importlib import resources

import numpy as np
import numpy.typing as npt

from voxwire.wav import read_wav_bytes

HELLO_TEXT = "Hello! I would like to book a table for two, tomorrow evening at seven."


def hello() -> tuple[npt.NDArray[np.int16], int]:
    """The bundled clip: int16 samples and their rate (24000)."""
    data = resources.files("voxwire").joinpath("data/hello.wav").read_bytes()
    return read_wav_bytes(data)


def speech_bounds_ms(
    x: npt.NDArray[np.int16], rate: int, floor_db: float = -50.0
) -> tuple[int, int]:
    """Where the speech of a clean recording starts and ends, in ms.

    The first and last 10 ms frames of ``x`` whose level is above ``floor_db`` dBFS.
    """
    n = rate // 100
    frames = x[: len(x) // n * n].astype(np.float64).reshape(-1, n)
    db = 10 * np.log10(np.mean(frames**2, axis=1) / 32768.0**2 + 1e-12)
    on = np.flatnonzero(db > floor_db)
    if len(on) == 0:
        raise ValueError("no sound above the floor")
    return int(on[0]) * 10, int(on[-1] + 1) * 10


def turn(
    pad_before: float = 1.0, pad_after: float = 1.5, noise: float = 0.0, seed: int = 3
) -> tuple[npt.NDArray[np.int16], int, int]:
    """A user turn at 24 kHz, and the true start and end of its speech in ms.

    The bundled clip between ``pad_before`` and ``pad_after`` seconds of silence, with white
    noise of RMS ``noise`` (seeded by ``seed``) added throughout (0: none).
    """
    x, rate = hello()
    a, b = speech_bounds_ms(x, rate)
    y = np.concatenate([np.zeros(int(pad_before * rate)), x, np.zeros(int(pad_after * rate))])
    if noise:
        y = y + np.random.default_rng(seed).standard_normal(len(y)) * noise
    lead = int(pad_before * 1000)
    return np.clip(y, -32768, 32767).astype(np.int16), lead + a, lead + b
