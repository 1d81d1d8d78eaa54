"""README "Resampling": a stream of 20 ms chunks and a one-shot call."""

import numpy as np

import voxwire

x = (np.sin(np.arange(24000) * 0.05) * 8000).astype(np.int16)  # 1 s at 24 kHz
chunk = x[:480]

r = voxwire.Resampler(24000, 16000)  # 8 to 48 kHz, and other rates (12k, 96k...)
out = r.process(chunk)  # streaming output is bit-identical to one shot
y = voxwire.resample(x, 44100, 16000)  # one shot, long inputs on every core

print(f"{len(out)} samples out of the first chunk; {len(y)} in one shot")
