"""README "Jitter buffer"."""

import numpy as np

import voxwire

pcm = np.zeros(2400, np.int16)  # 100 ms at 24 kHz
now_ms = 0.0

jb = voxwire.JitterBuffer(24000, frame_ms=20)  # adaptive; adaptive=False is a fixed pre-buffer
jb.push(pcm, now_ms)  # as audio arrives
frame = jb.pop(now_ms)  # one frame per call: audio, concealment or silence
jb.clear()  # barge-in

print(f"{len(frame)} samples per frame")
