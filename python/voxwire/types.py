"""The string options of voxwire's core as ``Literal`` types, for annotating code that passes them.

``voxwire._voxwire.pyi`` types the core's arguments with these, so mypy refuses a misspelt
engine or quality before the core would (with :class:`voxwire.errors.InvalidInputError`).
They are re-exported from :mod:`voxwire`.
"""

from __future__ import annotations

from typing import Literal, TypeAlias

__all__ = ["AudioFormat", "Eagerness", "Encoding", "EndMode", "Quality", "VadEngine"]

#: A VAD engine (``Vad``, ``TurnDetector``, ``InputPipeline``).
VadEngine: TypeAlias = Literal["silero", "spectral", "webrtc", "energy"]
#: A resampler preset: ``"hq"`` (alias ``"high"``), ``"lowlat"`` (``"low_latency"``) or
#: ``"vad"`` (``"analysis"``).
Quality: TypeAlias = Literal["hq", "lowlat", "vad", "high", "low_latency", "analysis"]
#: How pipeline audio travels: base64 text or raw bytes.
Encoding: TypeAlias = Literal["base64", "raw"]
#: The sample format of pipeline audio.
AudioFormat: TypeAlias = Literal["pcm16", "g711_ulaw", "g711_alaw"]
#: The rule that ends a turn (``TurnConfig.end_mode``).
EndMode: TypeAlias = Literal["silence", "semantic"]
#: The semantic rule's eagerness (``TurnConfig.eagerness``; ``"auto"`` is ``"medium"``).
Eagerness: TypeAlias = Literal["low", "medium", "high", "auto"]
