"""ASRs for the worker-pool tests: they run in worker processes (imported there by name).

Not mocks of voxwire: stand-ins for a third-party recognizer with known behaviour (slow,
failing, memory-hungry), so the pool's limits can be provoked on purpose.
"""

from __future__ import annotations

import os
import time

import numpy as np
import numpy.typing as npt


class StandInASR:
    """Answers ``"pid <pid> samples <n> rate <rate>"``.

    ``sleep_s``: each call first sleeps this long (a slow decode); ``fail``: each call raises
    ValueError; ``fail_init``: the constructor raises; ``ballast_mb``: memory held from
    construction on (a model).
    """

    def __init__(
        self,
        *,
        sleep_s: float = 0.0,
        fail: bool = False,
        fail_init: bool = False,
        ballast_mb: int = 0,
    ) -> None:
        if fail_init:
            raise RuntimeError("no model here")
        self.sleep_s, self.fail = sleep_s, fail
        self.ballast = np.ones(ballast_mb << 20, np.uint8)  # touched: resident

    def transcribe(self, pcm: npt.NDArray[np.int16], sample_rate: int) -> str:
        if self.fail:
            raise ValueError("cannot hear this")
        if self.sleep_s:
            time.sleep(self.sleep_s)
        return f"pid {os.getpid()} samples {len(pcm)} rate {sample_rate}"
