"""Extracts the Silero VAD weights voxwire carries from the silero-vad package's ONNX model.

The ``silero`` engine (rust/voxwire-core/src/vad/silero.rs) runs the network of
``silero_vad/data/silero_vad.onnx`` (the model ``load_silero_vad(onnx=True)`` loads, with a
16 kHz and an 8 kHz branch) natively. Its weights are read here from the ONNX graph with the
``onnx`` package and written to ``rust/voxwire-core/src/vad/silero_weights.bin``, which the
crate compiles in. The short-time Fourier basis (the first layer) is not stored: it is checked
here to be the periodic-Hann-windowed DFT basis, which the engine computes with an FFT.

The package's ``silero_vad_16k.safetensors`` holds other weights (none of its tensors match
any ONNX model in the package) and has no 8 kHz branch, so it is not used.

Run (needs ``onnx`` and ``silero-vad`` installed; ``pip install --no-deps silero-vad`` is
enough, torch is not needed)::

    python scripts/silero_weights.py [OUT]

File format (little-endian): ``b"VXSILERO"``, u32 format version (1), u32 tensor count, then
per tensor: u8 name length, name (ASCII), u8 rank, u32 per dimension, f32 data (C order).
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import struct
import sys
from pathlib import Path

import numpy as np

MODEL = "silero_vad/data/silero_vad.onnx"
DEFAULT_OUT = (
    Path(__file__).resolve().parent.parent / "rust/voxwire-core/src/vad/silero_weights.bin"
)

# ONNX constant name -> name in the file; per branch ("16k" then "8k").
NAMES = {
    "encoder.0.reparam_conv.weight": "conv1.weight",
    "encoder.0.reparam_conv.bias": "conv1.bias",
    "encoder.1.reparam_conv.weight": "conv2.weight",
    "encoder.1.reparam_conv.bias": "conv2.bias",
    "encoder.2.reparam_conv.weight": "conv3.weight",
    "encoder.2.reparam_conv.bias": "conv3.bias",
    "encoder.3.reparam_conv.weight": "conv4.weight",
    "encoder.3.reparam_conv.bias": "conv4.bias",
    "decoder.rnn.weight_ih": "lstm.weight_ih",
    "decoder.rnn.weight_hh": "lstm.weight_hh",
    "decoder.rnn.bias_ih": "lstm.bias_ih",
    "decoder.rnn.bias_hh": "lstm.bias_hh",
    "decoder.decoder.2.weight": "out.weight",
    "decoder.decoder.2.bias": "out.bias",
}


def model_path() -> Path:
    """The installed silero-vad package's ONNX model.

    Found through the distribution's files, without importing the package (its ``__init__``
    imports torch).
    """
    dist = importlib.metadata.distribution("silero-vad")
    return Path(str(dist.locate_file(MODEL)))


def branch_constants(path: Path) -> dict[str, dict[str, np.ndarray]]:
    """The weight constants of the model's two branches, ``{"16k": ..., "8k": ...}``."""
    import onnx
    from onnx import numpy_helper

    m = onnx.load(str(path))
    (top,) = [n for n in m.graph.node if n.op_type == "If"]
    graphs = {a.name: a.g for a in top.attribute}
    out: dict[str, dict[str, np.ndarray]] = {}
    # The top-level If tests sr == 16000: then is the 16 kHz branch, else the 8 kHz one.
    for rate, key in (("16k", "then_branch"), ("8k", "else_branch")):
        consts: dict[str, np.ndarray] = {}
        for n in graphs[key].node:
            if n.op_type != "Constant":
                continue
            name = n.output[0].split("Inline_0__")[-1]
            if "/" in name:
                continue
            consts[name] = numpy_helper.to_array(n.attribute[0].t)
        out[rate] = consts
    return out


def check_basis(basis: np.ndarray) -> None:
    """Checks that the STFT basis is the periodic-Hann-windowed DFT (cos rows, then -sin)."""
    rows, _, n = basis.shape
    bins = n // 2 + 1
    assert rows == 2 * bins, basis.shape
    t = np.arange(n)
    w = 0.5 - 0.5 * np.cos(2 * np.pi * t / n)
    k = np.arange(bins)[:, None]
    cos = w * np.cos(2 * np.pi * k * t / n)
    sin = -w * np.sin(2 * np.pi * k * t / n)
    err = max(np.abs(basis[:bins, 0] - cos).max(), np.abs(basis[bins:, 0] - sin).max())
    assert err < 1e-6, f"the STFT basis is not a Hann-windowed DFT (max error {err})"


def weights_bytes(path: Path) -> bytes:
    """The weights file for the model at ``path``."""
    consts = branch_constants(path)
    tensors: list[tuple[str, np.ndarray]] = []
    for rate in ("16k", "8k"):
        c = consts[rate]
        check_basis(c["stft.forward_basis_buffer"])
        for onnx_name, name in NAMES.items():
            tensors.append((f"{rate}.{name}", np.ascontiguousarray(c[onnx_name], "<f4")))
    parts = [b"VXSILERO", struct.pack("<II", 1, len(tensors))]
    for name, a in tensors:
        nb = name.encode("ascii")
        parts.append(struct.pack("<B", len(nb)) + nb + struct.pack("<B", a.ndim))
        parts.append(struct.pack(f"<{a.ndim}I", *a.shape))
        parts.append(a.tobytes())
    return b"".join(parts)


def main() -> None:
    """Writes the weights file (argument: its path; default: the crate's)."""
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_OUT
    path = model_path()
    data = weights_bytes(path)
    out.write_bytes(data)
    version = importlib.metadata.version("silero-vad")
    src = hashlib.sha256(path.read_bytes()).hexdigest()
    print(f"silero-vad {version} {MODEL} (sha256 {src}) -> {out} ({len(data)} bytes)")


if __name__ == "__main__":
    main()


def golden_signal(rate: int, seconds: float) -> np.ndarray:
    """The test signal of the Rust unit test (int16).

    0.4 s of faint noise, then 0.4 s of a harmonic tone (f0 rising segment by segment) over
    it, repeated.
    """
    n = int(rate * seconds)
    r = 12345
    noise = np.empty(n)
    for i in range(n):
        r = (r * 6364136223846793005 + 1442695040888963407) % (1 << 64)
        noise[i] = float((r >> 33) % 601) - 300.0
    t = np.arange(n) / rate
    seg = (t / 0.4).astype(np.int64)
    f0 = 120.0 + 40.0 * (seg // 2)
    tone = sum(np.sin(2 * np.pi * f0 * k * t) / k for k in range(1, 13)) * 3000.0
    x = noise + np.where(seg % 2 == 1, tone, 0.0)
    return np.round(x).astype(np.int16)


def golden(rate: int, seconds: float) -> list[float]:
    """The reference model's probabilities on ``golden_signal`` (onnxruntime)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.inter_op_num_threads = 1
    opts.intra_op_num_threads = 1
    s = ort.InferenceSession(str(model_path()), opts, providers=["CPUExecutionProvider"])
    win, ctx = (512, 64) if rate == 16000 else (256, 32)
    x = golden_signal(rate, seconds).astype(np.float32) / 32768.0
    state = np.zeros((2, 1, 128), np.float32)
    context = np.zeros(ctx, np.float32)
    out = []
    for i in range(0, len(x) - win + 1, win):
        inp = np.concatenate([context, x[i : i + win]])[None]
        p, state = s.run(None, {"input": inp, "state": state, "sr": np.array(rate, np.int64)})
        out.append(float(p[0, 0]))
        context = inp[0, -ctx:]
    return out
