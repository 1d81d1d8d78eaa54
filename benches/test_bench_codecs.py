"""pytest-benchmark suites: each voxwire call beside its peer, in the same group.

Run: pytest benches/ --benchmark-only  (compare within a group; the ratio table is
benches/compare.py).
"""

import base64
import warnings

import numpy as np
import pybase64
import pytest

import voxwire
from voxwire import g711

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import audioop

SIZES = {"20ms": 480, "2min": 24_000 * 120}


@pytest.fixture(params=list(SIZES), scope="module")
def pcm(request: pytest.FixtureRequest) -> tuple[str, np.ndarray]:
    rng = np.random.default_rng(0)
    x = (rng.standard_normal(SIZES[request.param]) * 4000).astype(np.int16)
    return request.param, x


def test_b64decode_voxwire(benchmark, pcm) -> None:
    size, x = pcm
    s = base64.b64encode(x.tobytes()).decode()
    benchmark.group = f"b64decode-{size}"
    np.testing.assert_array_equal(benchmark(voxwire.b64decode_pcm16, s), x)


def test_b64decode_pybase64(benchmark, pcm) -> None:
    size, x = pcm
    s = base64.b64encode(x.tobytes()).decode()
    benchmark.group = f"b64decode-{size}"
    benchmark(lambda: np.frombuffer(pybase64.b64decode(s), "<i2"))


def test_b64encode_voxwire(benchmark, pcm) -> None:
    size, x = pcm
    benchmark.group = f"b64encode-{size}"
    assert benchmark(voxwire.b64encode_pcm16, x) == base64.b64encode(x.tobytes())


def test_b64encode_pybase64(benchmark, pcm) -> None:
    size, x = pcm
    benchmark.group = f"b64encode-{size}"
    benchmark(pybase64.b64encode, x)


@pytest.mark.parametrize("law", ["ulaw", "alaw"])
def test_g711_encode_voxwire(benchmark, pcm, law) -> None:
    size, x = pcm
    benchmark.group = f"g711-{law}-encode-{size}"
    benchmark(getattr(g711, f"{law}_encode"), x)


@pytest.mark.parametrize("law", ["ulaw", "alaw"])
def test_g711_encode_audioop(benchmark, pcm, law) -> None:
    size, x = pcm
    b = x.tobytes()
    benchmark.group = f"g711-{law}-encode-{size}"
    benchmark(getattr(audioop, f"lin2{law}"), b, 2)


@pytest.mark.parametrize("law", ["ulaw", "alaw"])
def test_g711_decode_voxwire(benchmark, pcm, law) -> None:
    size, x = pcm
    codes = getattr(audioop, f"lin2{law}")(x.tobytes(), 2)
    benchmark.group = f"g711-{law}-decode-{size}"
    benchmark(getattr(g711, f"{law}_decode"), codes)


@pytest.mark.parametrize("law", ["ulaw", "alaw"])
def test_g711_decode_audioop(benchmark, pcm, law) -> None:
    size, x = pcm
    codes = getattr(audioop, f"lin2{law}")(x.tobytes(), 2)
    benchmark.group = f"g711-{law}-decode-{size}"
    benchmark(getattr(audioop, f"{law}2lin"), codes, 2)
