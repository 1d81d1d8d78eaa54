"""README "The audio core": base64, PCM16 views, framing and G.711 on one 20 ms message."""

import base64

import numpy as np

import voxwire
from voxwire import g711

samples = (np.sin(np.arange(480) * 0.1) * 8000).astype(np.int16)  # 20 ms at 24 kHz
event = {"audio": base64.b64encode(samples.tobytes()).decode()}
websocket_bytes = samples.tobytes()
chunk = websocket_bytes

pcm = voxwire.b64decode_pcm16(event["audio"])  # base64 str -> int16 array
text = voxwire.b64encode_pcm16(pcm)  # int16 array or PCM16 bytes -> base64
view = voxwire.as_pcm16(websocket_bytes)  # read-only int16 view, no copy
framer = voxwire.Framer(320)  # 20 ms at 16 kHz, any chunk size in
frames = framer.push(chunk)
codes = g711.ulaw_encode(pcm)  # bit-exact with audioop.lin2ulaw
pcm = g711.ulaw_decode(codes)

assert text.decode() == event["audio"] and len(view) == 480 and len(frames) == 1
print(f"{len(frames)} frame(s) of 320 samples, {len(codes)} mu-law bytes")
