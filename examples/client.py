"""README "Clients": stream speech to `voxwire serve`, play the whole answer into a WAV file."""

import asyncio
import tempfile
import wave

from voxwire import clips
from voxwire.client import RealtimeClient, ResponseDoneEvent
from voxwire.demo import local_server

KEY = "example-key-1"
pcm, _, _ = clips.turn(0.5, 1.5)  # a spoken sentence at 24 kHz, then 1.5 s of silence
wav_path = tempfile.mktemp(suffix=".wav")


async def main(port: int) -> None:
    """One spoken turn; the answer played to its end."""
    async with RealtimeClient(f"ws://127.0.0.1:{port}/v1/realtime", api_key=KEY) as c:
        c.play(wav_path=wav_path)  # answer audio -> jitter buffer -> WAV
        send = asyncio.create_task(c.stream_audio(pcm, 24000, speed=4))  # 20 ms appends, 4x

        async for event in c.events():
            if isinstance(event, ResponseDoneEvent):
                break
        await c.wait_played()  # until the whole answer has played
        await send


with local_server("--api-key", KEY, "--asr", "none") as port:
    asyncio.run(main(port))
with wave.open(wav_path) as w:
    print(f"answer: {w.getnframes() / w.getframerate():.1f} s in {wav_path}")
