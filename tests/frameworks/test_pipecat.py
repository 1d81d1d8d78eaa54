"""pipecat (``pipecat-ai``): its ``OpenAIRealtimeLLMService``, unmodified, in a real
``Pipeline`` against a real `voxwire serve` on 127.0.0.1 running the echo agent: the default
session, ``SemanticTurnDetection`` with recorded speech, a registered function, barge-in.

The server's events are observed by wrapping the service's event parser (it is called for
every message the service receives); nothing the service sends or does is changed.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fw_helpers import KEY, require, speech_24k

require("pipecat.services.openai.realtime.llm")

from pipecat.adapters.llm.schemas.function_schema import FunctionSchema  # noqa: E402
from pipecat.adapters.llm.schemas.tools_schema import ToolsSchema  # noqa: E402
from pipecat.frames.frames import (  # noqa: E402
    ErrorFrame,
    Frame,
    InputAudioRawFrame,
    LLMRunFrame,
    TTSAudioRawFrame,
)
from pipecat.pipeline.pipeline import Pipeline  # noqa: E402
from pipecat.pipeline.worker import PipelineParams, PipelineWorker  # noqa: E402
from pipecat.processors.aggregators.llm_context import LLMContext  # noqa: E402
from pipecat.processors.aggregators.llm_response_universal import (  # noqa: E402
    LLMContextAggregatorPair,
)
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor  # noqa: E402
from pipecat.services.llm_service import FunctionCallParams  # noqa: E402
from pipecat.services.openai.realtime import events as rt_events  # noqa: E402
from pipecat.services.openai.realtime.llm import OpenAIRealtimeLLMService  # noqa: E402
from pipecat.workers.runner import WorkerRunner  # noqa: E402

pytestmark = [pytest.mark.frameworks, pytest.mark.timeout(90)]


@pytest.fixture
def seen(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[dict[str, Any]]]:
    """Every server event the service receives, as JSON."""
    out: list[dict[str, Any]] = []
    parse = rt_events.parse_server_event

    def spy(message: str) -> Any:
        out.append(json.loads(message))
        return parse(message)

    monkeypatch.setattr(rt_events, "parse_server_event", spy)
    yield out


class Sink(FrameProcessor):
    """Keeps every frame that reaches the end of the pipeline, and passes it on."""

    def __init__(self) -> None:
        super().__init__()
        self.frames: list[Frame] = []

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        self.frames.append(frame)
        await self.push_frame(frame, direction)


def kinds(seen: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [e for e in seen if e.get("type") == kind]


async def until(cond: Callable[[], bool], what: str) -> None:
    """Wait for ``cond`` (a hang guard, not a timing assertion)."""
    try:
        async with asyncio.timeout(45):
            while not cond():
                await asyncio.sleep(0.05)
    except TimeoutError:
        raise AssertionError(f"no {what}") from None


async def run_pipeline(
    llm: OpenAIRealtimeLLMService,
    context: LLMContext,
    script: Callable[[PipelineWorker, Sink], Any],
) -> Sink:
    """Run ``[user aggregator, llm, sink, assistant aggregator]`` while ``script`` runs."""
    user, assistant = LLMContextAggregatorPair(context)
    sink = Sink()
    worker = PipelineWorker(
        Pipeline([user, llm, sink, assistant]),
        params=PipelineParams(audio_in_sample_rate=24000, audio_out_sample_rate=24000),
    )
    runner = WorkerRunner(handle_sigint=False)
    await runner.add_workers(worker)
    running = asyncio.create_task(runner.run())
    try:
        await script(worker, sink)
    finally:
        await worker.cancel()
        async with asyncio.timeout(20):
            await running
    errors = [f for f in sink.frames if isinstance(f, ErrorFrame)]
    assert not errors, errors
    return sink


def service(port: int, **kw: Any) -> OpenAIRealtimeLLMService:
    return OpenAIRealtimeLLMService(
        api_key=KEY, base_url=f"ws://127.0.0.1:{port}/v1/realtime", **kw
    )


def test_defaults_text_turn(port: int, seen: list[dict[str, Any]]) -> None:
    context = LLMContext([{"role": "user", "content": "Hello from pipecat."}])

    async def script(worker: PipelineWorker, sink: Sink) -> None:
        await worker.queue_frames([LLMRunFrame()])
        await until(lambda: bool(kinds(seen, "response.done")), "response.done")

    sink = asyncio.run(run_pipeline(service(port), context, script))
    assert not kinds(seen, "error")
    (done,) = kinds(seen, "response.done")
    assert done["response"]["status"] == "completed"
    (msg,) = done["response"]["output"]
    assert msg["content"][0]["transcript"] == "Hello from pipecat."
    assert any(isinstance(f, TTSAudioRawFrame) for f in sink.frames)  # spoken (espeak-ng)


def test_semantic_turn_detection_with_recorded_speech(
    port: int, seen: list[dict[str, Any]]
) -> None:
    pcm = speech_24k()
    props = rt_events.SessionProperties(
        audio=rt_events.AudioConfiguration(
            input=rt_events.AudioInput(
                turn_detection=rt_events.SemanticTurnDetection(eagerness="high")
            )
        )
    )
    llm = service(port, settings=OpenAIRealtimeLLMService.Settings(session_properties=props))

    async def script(worker: PipelineWorker, sink: Sink) -> None:
        await until(lambda: bool(kinds(seen, "session.updated")), "session.updated")
        frames = [
            InputAudioRawFrame(audio=pcm[k : k + 4800], sample_rate=24000, num_channels=1)
            for k in range(0, len(pcm), 4800)
        ]
        await worker.queue_frames(frames)
        await until(lambda: bool(kinds(seen, "response.done")), "response.done")

    sink = asyncio.run(run_pipeline(llm, LLMContext(), script))
    td = kinds(seen, "session.updated")[-1]["session"]["audio"]["input"]["turn_detection"]
    assert td["type"] == "semantic_vad" and td["eagerness"] == "high"
    assert len(kinds(seen, "input_audio_buffer.speech_started")) == 1
    assert len(kinds(seen, "input_audio_buffer.speech_stopped")) == 1
    assert kinds(seen, "response.done")[0]["response"]["status"] == "completed"
    assert any(isinstance(f, TTSAudioRawFrame) for f in sink.frames)  # the echo of the speech


def test_registered_function(port: int, seen: list[dict[str, Any]]) -> None:
    calls: list[dict[str, Any]] = []

    async def get_weather(params: FunctionCallParams) -> None:
        calls.append(dict(params.arguments))
        await params.result_callback({"weather": f"sunny in {params.arguments['city']}"})

    tools = ToolsSchema(
        standard_tools=[
            FunctionSchema(
                name="get_weather",
                description="The weather in a city.",
                properties={"city": {"type": "string"}},
                required=["city"],
            )
        ]
    )
    context = LLMContext([{"role": "user", "content": 'tool:get_weather {"city": "Paris"}'}], tools)
    llm = service(port)
    llm.register_function("get_weather", get_weather)

    def answered() -> bool:
        return any(
            "sunny in Paris" in (o.get("content") or [{}])[0].get("transcript", "")
            for d in kinds(seen, "response.done")
            for o in d["response"]["output"]
            if o["type"] == "message"
        )

    async def script(worker: PipelineWorker, sink: Sink) -> None:
        await worker.queue_frames([LLMRunFrame()])
        await until(answered, "an answer with the function's result")

    asyncio.run(run_pipeline(llm, context, script))
    assert calls == [{"city": "Paris"}]
    (upd, *_) = kinds(seen, "session.updated")[-1:]
    assert [t["name"] for t in upd["session"]["tools"]] == ["get_weather"]
    first = kinds(seen, "response.done")[0]["response"]
    assert [o["type"] for o in first["output"]] == ["function_call"]  # no empty message
    assert not kinds(seen, "error")


def test_barge_in(port: int, seen: list[dict[str, Any]]) -> None:
    pcm = speech_24k()
    text = " ".join(["This answer is long enough to be interrupted while it plays."] * 6)
    context = LLMContext([{"role": "user", "content": text}])

    async def script(worker: PipelineWorker, sink: Sink) -> None:
        await worker.queue_frames([LLMRunFrame()])
        await until(lambda: any(isinstance(f, TTSAudioRawFrame) for f in sink.frames), "audio")
        frames = [
            InputAudioRawFrame(audio=pcm[k : k + 4800], sample_rate=24000, num_channels=1)
            for k in range(0, len(pcm), 4800)
        ]
        await worker.queue_frames(frames)
        await until(lambda: len(kinds(seen, "response.done")) >= 2, "the answer to the speech")

    asyncio.run(run_pipeline(service(port), context, script))
    first, second = kinds(seen, "response.done")[:2]
    assert first["response"]["status"] == "cancelled"
    assert first["response"]["status_details"]["reason"] == "turn_detected"
    # pipecat truncated what it had been sent of the interrupted answer; no error.
    truncs = kinds(seen, "conversation.item.truncated")
    assert truncs and truncs[0]["item_id"] == first["response"]["output"][0]["id"]
    assert second["response"]["status"] == "completed"
    assert not kinds(seen, "error")
