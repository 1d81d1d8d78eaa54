"""G.711 mu-law and A-law, bit-exact with CPython's ``audioop`` at sample width 2.

A drop-in for ``audioop.lin2ulaw(x, 2)`` and friends (``audioop`` left the standard library
in Python 3.13). Encoders take int16 arrays or PCM16 bytes and return ``bytes``; decoders take
any bytes-like object of codes and return int16 numpy arrays.
"""

from __future__ import annotations

from voxwire._voxwire import alaw_decode, alaw_encode, ulaw_decode, ulaw_encode

__all__ = ["alaw_decode", "alaw_encode", "ulaw_decode", "ulaw_encode"]
