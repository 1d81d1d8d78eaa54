"""README "Pipelines: one call per WebSocket message"."""

import base64

import numpy as np

import voxwire

x = (np.sin(np.arange(480) * 0.1) * 8000).astype(np.int16)
message = {"audio": base64.b64encode(x.tobytes()).decode()}
agent_pcm = np.zeros(441, np.int16)  # 20 ms at 22.05 kHz

inp = voxwire.InputPipeline(in_rate=24000, encoding="base64")  # decode, resample, VAD, turns
for event in inp.push(message["audio"]):  # SpeechStarted / SpeechStopped
    print(event)
out = voxwire.OutputPipeline(in_rate=22050, out_rate=24000)  # resample, then base64
delta = out.push(agent_pcm)

print(f"level {inp.level_db:.1f} dB; {len(delta)} base64 characters out")
