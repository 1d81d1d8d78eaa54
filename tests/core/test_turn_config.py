"""TurnConfig: one frozen value for the turn parameters of TurnDetector and InputPipeline,
the keyword-only constructors, one VAD mode default, and the Literal types' values."""

from __future__ import annotations

import copy
import inspect
import pickle
from typing import Any, get_args

import numpy as np
import pytest

import voxwire
from voxwire import SpeechStarted, SpeechStopped, TurnConfig
from voxwire.errors import InvalidInputError


def talk(rate: int = 16000) -> np.ndarray:
    """Two turns of a voiced tone complex with 1 s pauses, over a faint noise floor."""
    rng = np.random.default_rng(3)
    t = np.arange(int(rate * 0.9)) / rate
    v = sum(np.sin(2 * np.pi * 140 * k * t) / k for k in range(1, 10)) * 5000
    gap = np.zeros(rate)
    x = np.concatenate([gap, v, gap, v, gap])
    x = x + rng.standard_normal(len(x)) * 30
    return np.asarray(np.clip(x, -32768, 32767), dtype=np.int16)


X = talk()


def events(obj: voxwire.TurnDetector | voxwire.InputPipeline, x: np.ndarray) -> list[object]:
    out: list[object] = []
    for i in range(0, len(x), 320):
        out += obj.push(x[i : i + 320])
    return out


def test_defaults_are_server_vad_and_both_classes_use_them() -> None:
    c = TurnConfig()
    assert (c.threshold, c.prefix_padding_ms, c.silence_duration_ms) == (0.5, 300, 500)
    assert (c.start_secs, c.min_volume, c.end_gate_db) == (0.2, 0.0, 35.0)
    assert (c.end_mode, c.eagerness, c.vad_reset_ms) == ("silence", "auto", 3000)
    assert repr(c) == (
        "TurnConfig(threshold=0.5, prefix_padding_ms=300, silence_duration_ms=500, "
        "start_secs=0.2, min_volume=0.0, end_gate_db=35.0, end_mode='silence', "
        "eagerness='auto', vad_reset_ms=3000)"
    )
    # turn=None is TurnConfig(): the same events, in the detector and in the pipeline.
    plain = events(voxwire.TurnDetector("spectral"), X)
    assert [type(e) for e in plain] == [SpeechStarted, SpeechStopped] * 2
    assert events(voxwire.TurnDetector("spectral", turn=c), X) == plain
    p = voxwire.InputPipeline(in_rate=16000, encoding="raw", engine="spectral")
    q = voxwire.InputPipeline(in_rate=16000, encoding="raw", engine="spectral", turn=c)
    assert events(p, X) == events(q, X) == plain


def test_one_config_drives_detector_and_pipeline_alike() -> None:
    c = TurnConfig(silence_duration_ms=300, prefix_padding_ms=100, start_secs=0.05)
    td = events(voxwire.TurnDetector("spectral", turn=c), X)
    p = voxwire.InputPipeline(in_rate=16000, encoding="raw", engine="spectral", turn=c)
    assert events(p, X) == td
    # ... and it is the configuration that acts: a longer silence ends turns later.
    longer = events(voxwire.TurnDetector("spectral", turn=c.replace(silence_duration_ms=800)), X)
    stops = [e for e in td if isinstance(e, SpeechStopped)]
    later = [e for e in longer if isinstance(e, SpeechStopped)]
    assert [b.emitted_at_ms - a.emitted_at_ms for a, b in zip(stops, later, strict=True)] == [
        500,
        500,
    ]


def test_stop_secs_is_silence_duration_ms() -> None:
    assert TurnConfig(stop_secs=0.8) == TurnConfig(silence_duration_ms=800)
    assert TurnConfig(stop_secs=0.8).silence_duration_ms == 800
    # silence_duration_ms wins when both are given, as before.
    assert TurnConfig(silence_duration_ms=200, stop_secs=0.8).silence_duration_ms == 200
    # replace(stop_secs=...) changes the silence of a config that has one.
    assert TurnConfig(silence_duration_ms=200).replace(stop_secs=1.5).silence_duration_ms == 1500


def test_value_semantics() -> None:
    c = TurnConfig(threshold=0.3, end_mode="semantic", eagerness="high", end_gate_db=0.0)
    assert c == TurnConfig(threshold=0.3, end_mode="semantic", eagerness="high", end_gate_db=0)
    assert c != TurnConfig(threshold=0.3, end_mode="semantic", eagerness="low", end_gate_db=0)
    assert c != c.replace(threshold=0.31)
    assert len({c, TurnConfig(threshold=0.3, end_mode="semantic", eagerness="high", end_gate_db=0)})
    assert hash(TurnConfig(threshold=-0.0)) == hash(TurnConfig(threshold=0.0))
    assert eval(repr(c), {"TurnConfig": TurnConfig}) == c
    assert pickle.loads(pickle.dumps(c)) == c
    assert copy.copy(c) == c and copy.deepcopy(c) == c
    assert c.replace() == c and c.replace(eagerness="low").eagerness == "low"
    with pytest.raises(AttributeError):
        c.threshold = 0.9  # type: ignore[misc]
    with pytest.raises(TypeError):
        TurnConfig(0.5)  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        c.replace(silence=3)  # type: ignore[call-arg]


@pytest.mark.parametrize(
    "kw",
    [
        {"threshold": 1.01},
        {"threshold": -0.1},
        {"threshold": float("nan")},
        {"min_volume": 2.0},
        {"prefix_padding_ms": -1},
        {"prefix_padding_ms": 60001},
        {"silence_duration_ms": 60001},
        {"silence_duration_ms": 2**70},
        {"stop_secs": 60.001},
        {"stop_secs": -0.5},
        {"start_secs": float("inf")},
        {"start_secs": 61},
        {"end_gate_db": -1.0},
        {"end_gate_db": float("inf")},
        {"end_mode": "smart"},
        {"eagerness": "eager"},
    ],
)
def test_bounds(kw: dict[str, Any]) -> None:
    with pytest.raises(InvalidInputError):
        TurnConfig(**kw)


def test_bounds_are_inclusive() -> None:
    c = TurnConfig(
        threshold=1.0,
        min_volume=1.0,
        prefix_padding_ms=60000,
        silence_duration_ms=60000,
        start_secs=60,
        end_gate_db=0.0,
    )
    assert voxwire.TurnDetector("energy", turn=c).push(X[:1600]) == []


def test_turn_parameters_left_the_constructors() -> None:
    for name in TurnConfig.__text_signature__.split("*, ")[1].split(", "):  # type: ignore[union-attr]
        kw: dict[str, Any] = {name.split("=")[0]: None}
        with pytest.raises(TypeError):
            voxwire.TurnDetector(**kw)
        with pytest.raises(TypeError):
            voxwire.InputPipeline(**kw)
    with pytest.raises(TypeError):
        voxwire.TurnDetector(turn={"threshold": 0.5})  # type: ignore[arg-type]


def test_options_are_keyword_only() -> None:
    # mypy refuses each of these calls too (hence the ignores).
    for make in (
        lambda: voxwire.Vad("energy", 16000),  # type: ignore[call-arg]
        lambda: voxwire.TurnDetector("energy", 16000),  # type: ignore[call-arg]
        lambda: voxwire.InputPipeline(24000),  # type: ignore[call-arg]
        lambda: voxwire.OutputPipeline(24000, 16000),  # type: ignore[call-arg]
        lambda: voxwire.Resampler(24000, 16000, "hq"),  # type: ignore[call-arg]
        lambda: voxwire.resample(X, 16000, 8000, "hq"),  # type: ignore[call-overload]
        lambda: voxwire.JitterBuffer(16000, 10),  # type: ignore[call-arg]
        lambda: voxwire.Framer(160).flush(False),  # type: ignore[call-arg]
    ):
        with pytest.raises(TypeError):
            make()


def test_one_vad_mode_default() -> None:
    def mode(cls: Any) -> Any:
        return inspect.signature(cls).parameters["mode"].default

    assert mode(voxwire.Vad) == mode(voxwire.TurnDetector) == mode(voxwire.InputPipeline) == 0
    # The webrtc pipeline without a mode is the one with mode=0.
    a = voxwire.InputPipeline(in_rate=16000, encoding="raw", engine="webrtc")
    b = voxwire.InputPipeline(in_rate=16000, encoding="raw", engine="webrtc", mode=0)
    assert events(a, X) == events(b, X)


def test_the_literal_types_list_what_the_core_takes() -> None:
    for engine in get_args(voxwire.VadEngine):
        assert voxwire.Vad(engine).engine == engine
    for q in get_args(voxwire.Quality):
        assert voxwire.Resampler(24000, 16000, quality=q).quality == q
    for enc in get_args(voxwire.Encoding):
        for fmt in get_args(voxwire.AudioFormat):
            voxwire.InputPipeline(encoding=enc, format=fmt, turn_detection=False)
            voxwire.OutputPipeline(encoding=enc, format=fmt)
    for end_mode in get_args(voxwire.EndMode):
        for eagerness in get_args(voxwire.Eagerness):
            assert TurnConfig(end_mode=end_mode, eagerness=eagerness).eagerness == eagerness
    # ... and nothing else.
    for make in (
        lambda: voxwire.Vad("tenvad"),  # type: ignore[arg-type]
        lambda: voxwire.Resampler(24000, 16000, quality="best"),  # type: ignore[arg-type]
        lambda: voxwire.OutputPipeline(encoding="hex"),  # type: ignore[arg-type]
        lambda: voxwire.OutputPipeline(format="opus"),  # type: ignore[arg-type]
        lambda: TurnConfig(end_mode="smart"),  # type: ignore[arg-type]
        lambda: TurnConfig(eagerness="HIGH"),  # type: ignore[arg-type]
    ):
        with pytest.raises(InvalidInputError):
            make()


def test_resample_returns_the_input_dtype() -> None:
    f = X.astype(np.float32) / 32768
    assert voxwire.resample(f, 16000, 8000).dtype == np.float32
    assert voxwire.resample(X, 16000, 8000).dtype == np.int16
    assert voxwire.resample(X.tobytes(), 16000, 8000).dtype == np.int16
    r = voxwire.Resampler(16000, 8000)
    assert r.process(f).dtype == np.float32 and r.flush().dtype == np.float32
    assert r.process(X).dtype == np.int16 and r.flush().dtype == np.int16
