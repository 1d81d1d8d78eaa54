"""Work that must not run in the server's process: speech recognition in worker processes.

A speech recognizer such as PocketSphinx is a C library that holds the GIL for the whole
decode (tens of seconds for a long utterance) and keeps its model and lattices in memory
(hundreds of MB). Run in a thread of the server, it stops every other session for as long
as it decodes. :class:`IsolatedASR` runs it in a pool of worker processes instead:

- each worker is a fresh interpreter (``python -c``, what multiprocessing's ``spawn`` start
  method does, but without re-running the parent's ``__main__`` script, which an embedding
  script without a ``__main__`` guard would not survive; never ``fork``: the server has threads
  and an event loop); it builds its ASR once from a picklable factory and then transcribes one
  utterance at a time;
- audio crosses as raw PCM16 bytes over a socket pair; the server reads the socket through
  its event loop (``loop.sock_recv_into``), so the loop never blocks on a worker;
- every call is bounded: in input (``max_audio_s``: longer audio is refused with
  :class:`~voxwire.errors.InputTooLargeError`, not truncated: a transcript of part of the
  turn would pass for the whole), in time (``timeout_s``: the worker is killed and the call
  raises :class:`~voxwire.errors.WorkerTimeoutError`), in queue (``max_pending`` calls wait
  for a worker; one more is refused at once with :class:`~voxwire.errors.WorkerBusyError`)
  and in memory (a worker whose RSS passes ``max_rss_mb`` after a call is retired);
- a cancelled call (barge-in, a closed session) kills its worker with SIGKILL; killed or dead
  workers are replaced lazily, by the next call that needs one;
- workers die with the server: they are killed when the pool is closed, collected or the
  interpreter exits, they ask the kernel for SIGKILL when their parent dies
  (``prctl(PR_SET_PDEATHSIG)`` on Linux, so even a SIGKILLed server leaves none behind) and
  they exit at end of file on their socket. They run at a lower CPU priority
  (``nice``) than the server, so the event loop gets the CPU first.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import importlib
import os
import pickle
import signal
import socket
import struct
import subprocess
import sys
import weakref
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import numpy.typing as npt

from voxwire.errors import (
    InputTooLargeError,
    InvalidInputError,
    WorkerBusyError,
    WorkerError,
    WorkerTimeoutError,
)

__all__ = ["IsolatedASR", "Slots"]

# Frames. Request: rate (u32), byte count (u32), then the PCM16 bytes (little endian).
# Reply: status (u8), retiring (u8), byte count (u32), then UTF-8 text.
_LEN = struct.Struct("<I")
_REQ = struct.Struct("<II")
_REP = struct.Struct("<BBI")
_OK, _FAILED, _READY, _BROKEN = 0, 1, 2, 3
#: Longest error text a worker sends back.
_MAX_ERROR_CHARS = 500
_PR_SET_PDEATHSIG = 1

#: What builds the ASR in the worker: a ``"module:attribute"`` spec or a picklable callable
#: (a class or a module-level function), called with the options as keyword arguments.
Factory = str | Callable[..., Any]


class Slots:
    """A counting limit with a bounded queue, usable from any event loop.

    At most ``size`` holders at once and at most ``max_waiting`` callers waiting; one more
    caller gets :class:`~voxwire.errors.WorkerBusyError` at once. Unlike
    :class:`asyncio.Semaphore` it binds to no loop (each waiter's future belongs to the loop
    that waits).
    """

    def __init__(self, size: int, *, max_waiting: int | None = None) -> None:
        if size < 1:
            raise InvalidInputError(f"size must be at least 1, not {size}")
        self.size = size
        self.max_waiting = max_waiting
        self.held = 0
        self._waiters: deque[asyncio.Future[None]] = deque()

    @property
    def waiting(self) -> int:
        """Callers waiting for a slot."""
        return sum(1 for f in self._waiters if not f.done())

    async def acquire(self) -> None:
        """Take a slot, waiting in line for one; WorkerBusyError when the line is full."""
        if self.held < self.size and not self.waiting:
            self.held += 1
            return
        if self.max_waiting is not None and self.waiting >= self.max_waiting:
            raise WorkerBusyError(
                f"all {self.size} workers are busy and {self.max_waiting} calls wait already"
            )
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(fut)
        try:
            await fut  # release() hands its slot over: held is already counted
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled():
                self.release()  # the slot came as we were cancelled: pass it on
            raise
        finally:
            with contextlib.suppress(ValueError):
                self._waiters.remove(fut)

    def try_acquire(self) -> bool:
        """Take a slot if one is free now, waiting for none (True: taken)."""
        if self.held < self.size and not self.waiting:
            self.held += 1
            return True
        return False

    def release(self) -> None:
        """Give a slot back (to the first waiter, if any)."""
        while self._waiters:
            fut = self._waiters.popleft()
            if not fut.done():
                fut.set_result(None)  # the slot passes to it as is
                return
        self.held -= 1


# --------------------------------------------------------------------------------------
# The worker process


def _die_with_parent(parent_pid: int) -> None:
    """SIGKILL this process when its parent dies (Linux); exit now if it already has."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent_pid:
        os._exit(0)


def _build(factory: Factory, options: Mapping[str, Any]) -> Any:
    if isinstance(factory, str):
        mod, _, attr = factory.partition(":")
        obj: Any = importlib.import_module(mod)
        for part in attr.split("."):
            obj = getattr(obj, part)
        factory = obj
    assert callable(factory)
    return factory(**options)


def _recv_exact(sock: socket.socket, n: int) -> bytearray | None:
    buf = bytearray(n)
    view, k = memoryview(buf), 0
    while k < n:
        got = sock.recv_into(view[k:])
        if got == 0:
            return None
        k += got
    return buf


def _rss_mb() -> float:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):
        return 0.0


def _worker_main(sock: socket.socket) -> None:
    """The worker: read its configuration, build the ASR, answer requests until EOF.

    One request at a time, until end of file on ``sock`` (the server closed it or exited).
    """
    head = _recv_exact(sock, _LEN.size)
    if head is None:
        return
    blob = _recv_exact(sock, _LEN.unpack(head)[0])
    if blob is None:
        return
    config = pickle.loads(blob)  # from the parent, over a private socket pair
    sys.path[:] = config["sys_path"]
    _die_with_parent(config["parent_pid"])
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the server's to handle
    if config["nice"]:
        with contextlib.suppress(OSError):
            os.nice(config["nice"])
    max_rss_mb = float(config["max_rss_mb"])

    def send(status: int, text: str, retiring: bool = False) -> None:
        body = text.encode("utf-8", "replace")
        sock.sendall(_REP.pack(status, retiring, len(body)) + body)

    try:
        asr = _build(config["factory"], config["options"])
        warm = getattr(asr, "warm", None)
        if callable(warm):
            warm()
    except BaseException as e:  # reported to the parent, then exit
        with contextlib.suppress(OSError):
            send(_BROKEN, f"{type(e).__name__}: {e}"[:_MAX_ERROR_CHARS])
        return
    send(_READY, "")
    while True:
        head = _recv_exact(sock, _REQ.size)
        if head is None:
            return  # the server closed its end (or exited)
        rate, n = _REQ.unpack(head)
        body = _recv_exact(sock, n)
        if body is None:
            return
        pcm = np.frombuffer(body, dtype="<i2").astype(np.int16, copy=False)
        try:
            status, text = _OK, str(asr.transcribe(pcm, rate))
        except Exception as e:  # reported; the worker goes on
            status, text = _FAILED, f"{type(e).__name__}: {e}"[:_MAX_ERROR_CHARS]
        del pcm, body
        retiring = max_rss_mb > 0 and _rss_mb() > max_rss_mb
        send(status, text, retiring)
        if retiring:
            return


def _child_main() -> None:
    """Entry point of a worker process: ``python -c _BOOT <fd>``."""
    sock = socket.socket(fileno=int(sys.argv[1]))
    sock.setblocking(True)
    with contextlib.suppress(BrokenPipeError, ConnectionResetError):
        _worker_main(sock)


#: What a worker runs (not ``-m voxwire.workers``: that would import this module twice).
_BOOT = "from voxwire.workers import _child_main; _child_main()"


# --------------------------------------------------------------------------------------
# The server's side


class _StaleWorker(Exception):
    """A reused worker's connection broke before its answer (it died while idle)."""


class _Worker:
    """One worker process and the server's end of its socket."""

    def __init__(self, config: dict[str, Any]) -> None:
        parent, child = socket.socketpair()
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-c", _BOOT, str(child.fileno())],
                pass_fds=(child.fileno(),),
                stdin=subprocess.DEVNULL,
            )
        except BaseException:
            parent.close()
            raise
        finally:
            child.close()
        try:
            blob = pickle.dumps({**config, "sys_path": list(sys.path)})
            # Small (a socket buffer holds it): the worker reads it first thing.
            parent.sendall(_LEN.pack(len(blob)) + blob)
        except BaseException:
            parent.close()
            self.proc.kill()
            _reap(self.proc)
            raise
        parent.setblocking(False)
        self.sock = parent
        self.pid: int = self.proc.pid
        self.ready = False
        self.dead = False
        self.busy = False  # a call uses the socket
        #: The ``affinity`` key of the last call it served (see IsolatedASR.try_transcribe).
        self.affinity: str | None = None

    def kill(self) -> None:
        """SIGKILL the worker (if it still runs) and reap it soon.

        A call waiting on its socket then reads end of file (WorkerError); the socket is
        closed here unless a call uses it (that call closes it when it ends).
        """
        if self.dead:
            return
        self.dead = True
        if self.proc.poll() is None:
            with contextlib.suppress(OSError):
                self.proc.kill()
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        if not self.busy:
            self.sock.close()
        _reap(self.proc)

    def retire(self) -> None:
        """Let a worker that is exiting by itself go (reaped when it has)."""
        if self.dead:
            return
        self.dead = True
        if not self.busy:
            self.sock.close()
        _reap(self.proc)

    async def _read_exact(self, n: int) -> bytes:
        loop = asyncio.get_running_loop()
        buf = bytearray(n)
        view, k = memoryview(buf), 0
        while k < n:
            got = await loop.sock_recv_into(self.sock, view[k:])
            if got == 0:
                raise WorkerError("the ASR worker exited")
            k += got
        return bytes(buf)

    async def read_reply(self) -> tuple[int, bool, str]:
        """The next reply: status, whether the worker retires, text."""
        status, retiring, n = _REP.unpack(await self._read_exact(_REP.size))
        text = (await self._read_exact(n)).decode("utf-8", "replace") if n else ""
        return status, bool(retiring), text

    async def send(self, rate: int, data: bytes) -> None:
        """One request."""
        loop = asyncio.get_running_loop()
        await loop.sock_sendall(self.sock, _REQ.pack(rate, len(data)))
        await loop.sock_sendall(self.sock, data)


def _reap(proc: subprocess.Popen[bytes]) -> None:
    """Collect a killed or exiting child's status without blocking the event loop.

    With the event loop: a pidfd (Linux 5.3+) becomes readable when the child has exited,
    else the child is polled every 20 ms for up to 10 s. Without one: wait up to 5 s.
    """
    if proc.poll() is not None:
        return
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(5)
        return
    try:
        fd = os.pidfd_open(proc.pid)
    except (AttributeError, OSError):
        fd = -1
    if fd >= 0:

        def exited() -> None:
            loop.remove_reader(fd)
            os.close(fd)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(1)  # a pidfd is readable once the child is a zombie: at once

        loop.add_reader(fd, exited)
        return

    def poll(left: int) -> None:
        if proc.poll() is None and left > 0:
            loop.call_later(0.02, poll, left - 1)

    poll(500)


def _kill_all(workers: set[_Worker]) -> None:
    for w in list(workers):
        w.kill()
    workers.clear()


class IsolatedASR:
    """An ASR run in a pool of worker processes, so it never blocks the event loop.

    ``factory`` builds the ASR in each worker: a ``"module:attribute"`` spec (e.g.
    ``"voxwire.asr:PocketSphinxASR"``) or a picklable callable (a class or module-level
    function), called with ``options`` as keyword arguments. The ASR is built once per worker
    (and ``warm()``-ed when it has that method); its ``transcribe(pcm, sample_rate) -> str``
    is blocking and runs in the worker.

    Limits (each documented in ``docs/security.md``):

    - ``workers``: processes that decode at once (started lazily, or by :meth:`start`);
    - ``max_pending``: calls that may wait for a worker; one more raises
      :class:`~voxwire.errors.WorkerBusyError` at once;
    - ``max_audio_s``: longest audio accepted; longer raises
      :class:`~voxwire.errors.InputTooLargeError` (refused, not truncated);
    - ``timeout_s``: longest decode; past it the worker is killed and the call raises
      :class:`~voxwire.errors.WorkerTimeoutError` (the next call starts a new worker);
    - ``start_timeout_s``: longest start of a worker (spawn, imports, model load);
    - ``max_rss_mb``: a worker whose resident memory is above this after a call exits
      and is replaced (0: never);
    - ``nice``: added to the workers' CPU niceness (the server's loop goes first).

    A call cancelled while its worker decodes kills that worker. An ASR that raises gives
    :class:`~voxwire.errors.WorkerError` with the exception's type and message (the worker
    stays); a worker that dies gives WorkerError too (it is replaced on demand).
    """

    def __init__(
        self,
        factory: Factory,
        *,
        options: Mapping[str, Any] | None = None,
        workers: int = 1,
        max_pending: int = 8,
        max_audio_s: float = 120.0,
        timeout_s: float = 120.0,
        start_timeout_s: float = 60.0,
        max_rss_mb: float = 1024.0,
        nice: int = 10,
    ) -> None:
        if not isinstance(factory, str) and not callable(factory):
            raise InvalidInputError("factory must be a 'module:attribute' string or a callable")
        opts = dict(options or {})
        try:
            pickle.dumps((factory, opts))
        except Exception as e:
            raise InvalidInputError(
                f"the ASR factory and its options must be picklable (they go to another "
                f"process): {type(e).__name__}: {e}"
            ) from None
        if workers < 1 or max_pending < 0:
            raise InvalidInputError("workers must be at least 1 and max_pending at least 0")
        for name, v in (
            ("max_audio_s", max_audio_s),
            ("timeout_s", timeout_s),
            ("start_timeout_s", start_timeout_s),
        ):
            if not (v > 0 and np.isfinite(v)):
                raise InvalidInputError(f"{name} must be a positive number of seconds")
        self.factory = factory
        self.options = opts
        self.workers = workers
        self.max_pending = max_pending
        self.max_audio_s = float(max_audio_s)
        self.timeout_s = float(timeout_s)
        self.start_timeout_s = float(start_timeout_s)
        self.max_rss_mb = float(max_rss_mb)
        self.nice = int(nice)
        self._slots = Slots(workers, max_waiting=max_pending)
        self._idle: list[_Worker] = []
        self._busy: dict[int, _Worker] = {}
        self._closed = False
        # Every worker started and not yet killed (at exit or collection: killed).
        self._live: set[_Worker] = set()
        weakref.finalize(self, _kill_all, self._live)

    # -- introspection (monitoring, tests) ----------------------------------------------

    @property
    def worker_pids(self) -> list[int]:
        """Process ids of the live workers, idle and busy."""
        return [w.pid for w in self._idle] + list(self._busy)

    @property
    def busy_pids(self) -> list[int]:
        """Process ids of the workers transcribing now."""
        return list(self._busy)

    @property
    def free_workers(self) -> int:
        """Calls that would start now without waiting (workers neither busy nor promised)."""
        if self._slots.waiting:
            return 0
        return self._slots.size - self._slots.held

    @property
    def pending(self) -> int:
        """Calls waiting for a worker."""
        return self._slots.waiting

    # -- life cycle ---------------------------------------------------------------------

    def _spawn(self) -> _Worker:
        self._live -= {w for w in self._live if w.dead}
        w = _Worker(
            {
                "factory": self.factory,
                "options": self.options,
                "parent_pid": os.getpid(),
                "nice": self.nice,
                "max_rss_mb": self.max_rss_mb,
            }
        )
        self._live.add(w)
        return w

    def start(self) -> None:
        """Start every worker now (else each starts when a call first needs it).

        Call it from the thread that runs the server (the workers die with it on Linux).
        """
        if self._closed:
            raise WorkerError("this IsolatedASR is closed")
        while len(self._idle) + len(self._busy) < self.workers:
            self._idle.append(self._spawn())

    def close(self) -> None:
        """Kill every worker now (calls in progress get WorkerError). Idempotent."""
        self._closed = True
        _kill_all(self._live)
        self._idle.clear()
        self._busy.clear()

    async def aclose(self) -> None:
        """Close (see :meth:`close`), then wait (at most 5 s) until the workers are reaped."""
        procs = [w.proc for w in self._live]
        self.close()
        for _ in range(500):
            if all(p.poll() is not None for p in procs):
                return
            await asyncio.sleep(0.01)

    # -- the call -----------------------------------------------------------------------

    async def transcribe(self, pcm: npt.NDArray[np.int16], sample_rate: int) -> str:
        """The words of ``pcm`` (int16 mono at ``sample_rate``), decoded in a worker.

        Raises InputTooLargeError (audio over ``max_audio_s``), WorkerBusyError (the queue
        is full), WorkerTimeoutError (past ``timeout_s``; the worker was killed),
        WorkerError (the ASR raised, or its worker died or could not start).
        """
        x = self._check(pcm, sample_rate)
        await self._slots.acquire()
        return await self._call(x, int(sample_rate), None)

    async def try_transcribe(
        self, pcm: npt.NDArray[np.int16], sample_rate: int, *, affinity: str | None = None
    ) -> str | None:
        """As :meth:`transcribe` when a worker is free now; None at once when none is.

        For work that may be skipped (partial transcripts): it never waits in line.
        ``affinity`` (a session's key) sends the call to the idle worker that served the
        same key last, when there is one (a stateful ASR, such as
        :class:`voxwire.asr.PocketSphinxPartialASR`, then goes on where it was).
        """
        x = self._check(pcm, sample_rate)
        if not self._slots.try_acquire():
            return None
        return await self._call(x, int(sample_rate), affinity)

    def _check(self, pcm: npt.NDArray[np.int16], sample_rate: int) -> npt.NDArray[np.int16]:
        if self._closed:
            raise WorkerError("this IsolatedASR is closed")
        if not isinstance(sample_rate, int | np.integer) or not 1 <= sample_rate <= 768_000:
            raise InvalidInputError(f"sample_rate must be 1 to 768000 Hz, not {sample_rate!r}")
        x = np.asarray(pcm)
        if x.dtype != np.int16:
            raise InvalidInputError(f"pcm must be int16 samples, not {x.dtype}")
        if x.ndim != 1:
            raise InvalidInputError(f"pcm must be mono (one dimension), not shape {x.shape}")
        if len(x) > self.max_audio_s * sample_rate:
            raise InputTooLargeError(
                f"{len(x) / sample_rate:.1f} s of audio is more than the {self.max_audio_s:g} s "
                f"this ASR accepts"
            )
        return x

    async def _call(self, x: npt.NDArray[np.int16], rate: int, affinity: str | None) -> str:
        """One call holding a slot (released here, however it ends)."""
        try:
            # Bytes made once a worker is free: waiting calls hold no second copy.
            data = x.astype("<i2", copy=False).tobytes()
            try:
                return await self._run(data, rate, fresh=False, affinity=affinity)
            except _StaleWorker:
                # An idle worker that was dying (killed from outside; its exit not yet
                # visible) broke before it answered: once more, on a worker of its own.
                return await self._run(data, rate, fresh=True, affinity=affinity)
        finally:
            self._slots.release()

    async def _run(
        self, data: bytes, rate: int, *, fresh: bool, affinity: str | None = None
    ) -> str:
        if self._closed:
            raise WorkerError("this IsolatedASR is closed")
        w = None
        if affinity is not None and not fresh:
            # The worker that served this key last goes to the end, where pop() takes from.
            same = [k for k, v in enumerate(self._idle) if v.affinity == affinity]
            if same:
                self._idle.append(self._idle.pop(same[-1]))
        while self._idle and not fresh:
            w = self._idle.pop()
            if w.proc.poll() is None:
                break
            w.kill()  # it died while idle (killed from outside, out of memory...)
            w = None
        if w is None:
            w = self._spawn()
        self._busy[w.pid] = w
        w.busy = True
        w.affinity = affinity
        reused = w.ready
        keep = False
        try:
            if not w.ready:
                try:
                    async with asyncio.timeout(self.start_timeout_s):
                        status, _, text = await w.read_reply()
                except TimeoutError:
                    raise WorkerTimeoutError(
                        f"the ASR worker did not start within {self.start_timeout_s:g} s"
                    ) from None
                if status != _READY:
                    raise WorkerError(f"the ASR worker could not start: {text}")
                w.ready = True
            try:
                async with asyncio.timeout(self.timeout_s):
                    try:
                        await w.send(rate, data)
                        status, retiring, text = await w.read_reply()
                    except (ConnectionError, WorkerError):
                        if reused:
                            raise _StaleWorker from None
                        raise
            except TimeoutError:
                raise WorkerTimeoutError(
                    f"transcription took more than {self.timeout_s:g} s; its worker was killed"
                ) from None
            if retiring:
                w.retire()
            else:
                keep = True
            if status == _FAILED:
                raise WorkerError(f"the ASR failed: {text}")
            if status != _OK:
                keep = False
                raise WorkerError(f"unexpected reply from the ASR worker (status {status})")
            return text
        except WorkerError:  # (a TimeoutError, so an OSError too)
            raise
        except OSError as e:
            raise WorkerError(f"the ASR worker's connection broke: {type(e).__name__}") from None
        finally:
            # Anything but a complete exchange (a timeout, a cancellation, a broken worker)
            # leaves the worker mid-request: it is killed, and replaced by the next call.
            self._busy.pop(w.pid, None)
            w.busy = False
            if keep and not self._closed:
                self._idle.append(w)
            else:
                w.kill()
                w.sock.close()
