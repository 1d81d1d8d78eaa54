"""README "Voice activity and turns"."""

import numpy as np

import voxwire

frame = (np.sin(np.arange(160) * 0.3) * 8000).astype(np.int16)  # 10 ms at 16 kHz

vad = voxwire.Vad("silero", sample_rate=16000, frame_ms=10)  # or "spectral", "webrtc", "energy"
speech = vad.is_speech(frame)
from voxwire import webrtcvad  # noqa: E402  (drop-in for py-webrtcvad)

turn = voxwire.TurnConfig(threshold=0.5, prefix_padding_ms=300, silence_duration_ms=500)
td = voxwire.TurnDetector("silero", turn=turn)  # InputPipeline takes the same turn=
# semantic_vad: judge from the end's pitch and level whether the speaker is done, then wait
# 100 ms-2 s (high), 200 ms-4 s (medium = auto) or 300 ms-8 s (low); docs/design/turns.md
td = voxwire.TurnDetector(turn=voxwire.TurnConfig(end_mode="semantic", eagerness="auto"))

print(f"speech: {speech}; webrtcvad drop-in: {webrtcvad.Vad(2).is_speech(frame.tobytes(), 16000)}")
