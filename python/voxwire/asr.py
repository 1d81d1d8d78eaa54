"""Speech recognition plugins: user transcripts for audio turns (the ``voxwire[asr]`` extra).

An ASR is either a :class:`BlockingASR`, any object with a blocking
``transcribe(pcm, sample_rate) -> str`` (the server calls it in a thread with
``asyncio.to_thread``, so it must be safe to call from several threads at once), or an
:class:`AsyncASR`, whose ``transcribe`` is a coroutine, such as
:class:`voxwire.workers.IsolatedASR`, which runs a blocking ASR in worker processes. A blocking
ASR that holds the GIL (PocketSphinx does, for the whole decode) stalls every session while it
runs in a thread: :func:`load_asr`, which ``voxwire serve`` uses, wraps PocketSphinx in an
IsolatedASR.

Built in: :class:`PocketSphinxASR`, CMU PocketSphinx with the US English acoustic model,
language model and dictionary that its PyPI wheel ships (``pip install voxwire[asr]``). It
is small and offline, not accurate: expect many wrong words on anything but clear, careful
speech (the bundled eSpeak NG clip comes out with most of its words wrong).
"""

from __future__ import annotations

import contextlib
import importlib.util
import inspect
import os
import threading
from typing import Any, Protocol, TypeAlias, cast

import numpy as np
import numpy.typing as npt

import voxwire
from voxwire.workers import IsolatedASR


class BlockingASR(Protocol):
    """A speech recognizer: the text of one whole utterance."""

    def transcribe(self, pcm: npt.NDArray[np.int16], sample_rate: int) -> str:
        """The words of ``pcm`` (int16 mono at ``sample_rate``); "" when there are none.

        Blocking; called from worker threads, possibly several at once.
        """
        ...


class AsyncASR(Protocol):
    """A speech recognizer whose ``transcribe`` is a coroutine (it must not block the loop)."""

    async def transcribe(self, pcm: npt.NDArray[np.int16], sample_rate: int) -> str:
        """The words of ``pcm`` (int16 mono at ``sample_rate``); "" when there are none."""
        ...


#: What the server accepts as its ASR: either kind.
ASR: TypeAlias = BlockingASR | AsyncASR


async def transcribe(asr: ASR, pcm: npt.NDArray[np.int16], sample_rate: int) -> str:
    """Run either kind of ASR from the event loop.

    An async one is awaited, a blocking one runs in a thread (``asyncio.to_thread``).
    """
    if inspect.iscoroutinefunction(asr.transcribe):
        return await cast(AsyncASR, asr).transcribe(pcm, sample_rate)
    import asyncio

    return await asyncio.to_thread(cast(BlockingASR, asr).transcribe, pcm, sample_rate)


class PocketSphinxASR:
    """PocketSphinx with its bundled US English model, decoding a whole utterance at once.

    Audio is resampled to 16 kHz with :func:`voxwire.resample`. Audio with no 10 ms frame
    above ``floor_db`` dBFS is silence and gives "" without decoding (PocketSphinx hears
    words such as "ah" in digital silence).

    A decoder takes about 2 s to load and about 100 MB, and is not thread-safe: each instance
    keeps the decoders it has made and lends one to each call, making another only when all
    are busy (so concurrent calls decode in parallel, and sequential calls reuse one
    decoder). ``config`` holds extra PocketSphinx options (e.g. ``lw=6.5``).
    """

    name = "pocketsphinx"
    RATE = 16000

    def __init__(self, floor_db: float = -50.0, **config: Any) -> None:
        import pocketsphinx  # noqa: F401  (fail here, not in the first call, if missing)

        self.floor_db = floor_db
        self.config: dict[str, Any] = {"samprate": self.RATE, "loglevel": "FATAL", **config}
        self._idle: list[Any] = []
        self._lock = threading.Lock()

    def _decoder(self) -> Any:
        with self._lock:
            if self._idle:
                return self._idle.pop()
        from pocketsphinx import Decoder

        return Decoder(**self.config)

    def warm(self) -> None:
        """Load one decoder now (otherwise the first call loads it)."""
        d = self._decoder()
        with self._lock:
            self._idle.append(d)

    def is_silence(self, pcm: npt.NDArray[np.int16], sample_rate: int) -> bool:
        """Whether no 10 ms frame of ``pcm`` is above ``floor_db`` dBFS."""
        n = max(1, sample_rate // 100)
        x = np.asarray(pcm, dtype=np.float64)
        if len(x) < n:
            return True
        frames = x[: len(x) // n * n].reshape(-1, n)
        level = np.mean(frames**2, axis=1) / 32768.0**2
        return bool(np.max(level) <= 10 ** (self.floor_db / 10))

    def transcribe(self, pcm: npt.NDArray[np.int16], sample_rate: int) -> str:
        """The hypothesis of the whole utterance, lower case; "" for silence or no words."""
        pcm = np.ascontiguousarray(pcm, dtype=np.int16)
        if self.is_silence(pcm, sample_rate):
            return ""
        x = pcm if sample_rate == self.RATE else voxwire.resample(pcm, sample_rate, self.RATE)
        data = np.ascontiguousarray(x, dtype="<i2").tobytes()
        d = self._decoder()
        d.start_utt()
        d.process_raw(data, False, True)  # no_search=False, full_utt=True
        d.end_utt()
        hyp = d.hyp()
        text = hyp.hypstr.strip() if hyp is not None else ""
        # Returned only after a clean decode: one that raised is not lent out again.
        with self._lock:
            self._idle.append(d)
        return str(text)


class PocketSphinxPartialASR(PocketSphinxASR):
    """PocketSphinx's partial hypothesis of a turn in progress, decoded incrementally.

    ``transcribe(pcm, rate)`` gives the hypothesis of ``pcm``, the turn so far; called again
    with a longer ``pcm`` that starts with the previous one (the same turn, grown), it
    decodes only the new samples (PocketSphinx's live decoding: ``process_raw`` piece by
    piece, ``hyp()`` mid-utterance) instead of the whole prefix again. Any other audio
    starts a new utterance. One instance follows one turn at a time (the server's partial
    pool sends a session's calls to the same worker when it can; a turn that moves to
    another worker is decoded from its start there).

    Partial hypotheses are live decoding's: cepstral mean normalisation is estimated as the
    audio comes, so they may differ from the whole-turn decode (:class:`PocketSphinxASR`,
    the final transcript), and a later one may revise earlier words.
    """

    name = "pocketsphinx-partial"

    def __init__(self, floor_db: float = -50.0, **config: Any) -> None:
        super().__init__(floor_db, **config)
        self._live: Any = None
        self._cmn0 = ""
        self._seen: npt.NDArray[np.int16] = np.zeros(0, np.int16)
        self._rate = 0
        self._resampler: Any = None
        self._hyp = ""

    def transcribe(self, pcm: npt.NDArray[np.int16], sample_rate: int) -> str:
        """The partial hypothesis of ``pcm`` (lower case; "" when it has no words yet)."""
        pcm = np.ascontiguousarray(pcm, dtype=np.int16)
        n = len(self._seen)
        same = (
            self._live is not None
            and sample_rate == self._rate
            and len(pcm) >= n
            and np.array_equal(pcm[:n], self._seen)
        )
        if not same:
            self._restart(sample_rate)
            n = 0
        new = pcm[n:]
        if len(new):
            x = new if self._resampler is None else self._resampler.process(new)
            data = np.ascontiguousarray(x, dtype="<i2").tobytes()
            if data:
                # Live decoding keeps no state of ours that a failure could leave half made:
                # an exception drops the stream (the next call starts it again).
                try:
                    self._live.process_raw(data, False, False)  # no_search, full_utt
                except Exception:
                    self._live = None
                    raise
            self._seen = pcm.copy()
            hyp = self._live.hyp()
            self._hyp = str(hyp.hypstr).strip() if hyp is not None else ""
        return self._hyp

    def _restart(self, sample_rate: int) -> None:
        if self._live is None:
            self._live = self._decoder()
            self._cmn0 = self._live.get_cmn()
        else:
            with contextlib.suppress(Exception):
                self._live.end_utt()
        # Live decoding carries its cepstral mean over from one utterance to the next: each
        # turn starts from the model's initial mean instead, so no turn (of any session)
        # colours the next one's hypotheses.
        self._live.set_cmn(self._cmn0)
        self._live.start_utt()
        self._seen = np.zeros(0, np.int16)
        self._rate = sample_rate
        self._resampler = (
            None if sample_rate == self.RATE else voxwire.Resampler(sample_rate, self.RATE)
        )
        self._hyp = ""


def default_asr() -> BlockingASR | None:
    """:class:`PocketSphinxASR` (in this process) when ``pocketsphinx`` imports, else None."""
    try:
        return PocketSphinxASR()
    except ImportError:
        return None


def isolated_pocketsphinx(**kw: Any) -> IsolatedASR:
    """PocketSphinx in worker processes: a :class:`voxwire.workers.IsolatedASR`.

    Raises ImportError when ``pocketsphinx`` is not installed (checked without importing it
    here: the model is loaded in the workers only). ``kw`` go to IsolatedASR; by default
    half the CPUs (1 to 4) decode at once.
    """
    if importlib.util.find_spec("pocketsphinx") is None:
        raise ImportError("pocketsphinx is not installed: pip install 'voxwire[asr]'")
    kw.setdefault("workers", max(1, min(4, (os.cpu_count() or 2) // 2)))
    return IsolatedASR("voxwire.asr:PocketSphinxASR", **kw)


def isolated_pocketsphinx_partial(**kw: Any) -> IsolatedASR:
    """:class:`PocketSphinxPartialASR` in worker processes, for partial transcripts.

    A pool of its own (one worker by default), apart from the final transcripts' pool, so
    partial decoding never makes a final transcript wait for a worker. Raises ImportError
    when ``pocketsphinx`` is not installed.
    """
    if importlib.util.find_spec("pocketsphinx") is None:
        raise ImportError("pocketsphinx is not installed: pip install 'voxwire[asr]'")
    kw.setdefault("workers", 1)
    kw.setdefault("max_pending", 0)
    kw.setdefault("nice", 15)  # below the final transcripts' workers (10)
    return IsolatedASR("voxwire.asr:PocketSphinxPartialASR", **kw)


def load_partial_asr(spec: str) -> ASR | None:
    """The partial-transcript ASR that goes with :func:`load_asr`'s ``spec`` (or None).

    ``pocketsphinx`` (and ``auto`` when it is installed): :func:`isolated_pocketsphinx_partial`.
    """
    if spec == "auto":
        spec = "pocketsphinx" if importlib.util.find_spec("pocketsphinx") is not None else "none"
    if spec == "pocketsphinx":
        return isolated_pocketsphinx_partial()
    if spec == "none":
        return None
    raise ValueError(f"unknown ASR {spec!r}: use 'pocketsphinx', 'none' or 'auto'")


def load_asr(spec: str, *, isolated: bool = True) -> ASR | None:
    """An ASR by name: ``pocketsphinx``, ``none``, or ``auto`` (pocketsphinx if installed).

    PocketSphinx runs in worker processes (:func:`isolated_pocketsphinx`); with
    ``isolated=False`` it runs in this process instead (in the server: in a thread, where it
    holds the GIL while it decodes; kept for comparison, see ``benches/isolation.py``).
    """
    if spec == "none":
        return None
    if spec == "auto":
        if importlib.util.find_spec("pocketsphinx") is None:
            return None
        spec = "pocketsphinx"
    if spec == "pocketsphinx":
        return isolated_pocketsphinx() if isolated else PocketSphinxASR()
    raise ValueError(f"unknown ASR {spec!r}: use 'pocketsphinx', 'none' or 'auto'")


__all__ = [
    "ASR",
    "AsyncASR",
    "BlockingASR",
    "PocketSphinxASR",
    "PocketSphinxPartialASR",
    "default_asr",
    "isolated_pocketsphinx",
    "isolated_pocketsphinx_partial",
    "load_asr",
    "load_partial_asr",
    "transcribe",
]
