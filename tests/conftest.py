import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

# The servers the tests start keep their default state (the SQLite store, the JWT secret)
# under the state directory: a fresh one per test run, never the user's own.
os.environ["XDG_STATE_HOME"] = tempfile.mkdtemp(prefix="voxwire-test-state-")
from hypothesis import settings

# Property tests check results, not speed: no per-example deadline (a loaded machine, such as
# a 2-core CI runner building in parallel, would otherwise fail them at random).
settings.register_profile("voxwire", deadline=None)
settings.load_profile("voxwire")

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    try:
        import audioop  # stdlib up to 3.12
    except ImportError:  # 3.13+: the audioop-lts backport (test extra)
        import audioop  # type: ignore[no-redef]

__all__ = ["audioop"]


# -- a real redis-server on a free loopback port ------------------------------------------------


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now (the OS picks it)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RedisServer:
    """A redis-server subprocess on 127.0.0.1 without persistence; start/kill/restart it."""

    def __init__(self, workdir: Path, port: int | None = None) -> None:
        self.workdir = workdir
        self.port = port or free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def answers(self) -> bool:
        """Whether it answers PING now (one bounded try)."""
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s:
                s.sendall(b"PING\r\n")
                return s.recv(64).startswith(b"+PONG")
        except OSError:
            return False

    def start(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            if os.environ.get("CI"):
                pytest.fail("redis-server is not installed, and CI must run the Redis tests")
            pytest.skip("redis-server is not installed (apt-get install redis-server)")
        self.workdir.mkdir(parents=True, exist_ok=True)
        log = open(self.workdir / "redis.log", "ab")  # noqa: SIM115
        with log:
            self.proc = subprocess.Popen(
                [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                 "--appendonly", "no", "--dir", str(self.workdir), "--daemonize", "no"],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            )  # fmt: skip
        for _ in range(200):  # at most ~10 s
            if self.answers():
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        self.kill()
        tail = (self.workdir / "redis.log").read_text(errors="replace")[-500:]
        raise RuntimeError(f"redis-server did not answer PING on port {self.port}: {tail}")

    def kill(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            proc.kill()
        if proc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=10)


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """One redis-server for the whole session (skips when the binary is missing).

    Tests share it: each should use its own key prefix (or database) to stay independent.
    """
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    server.start()
    try:
        yield server
    finally:
        server.kill()


@pytest.fixture(scope="session")
def redis_url(redis_server: RedisServer) -> str:
    """The URL of the session's redis-server, ``redis://127.0.0.1:PORT/0``."""
    return redis_server.url


@pytest.fixture
def redis_server_factory(tmp_path: Path) -> Iterator[type[RedisServer]]:
    """Makes private redis-servers (``factory(port=None)``) for a test that kills or restarts
    one; every one it made is killed at the end of the test."""
    made: list[RedisServer] = []

    class Factory(RedisServer):
        def __init__(self, port: int | None = None) -> None:
            super().__init__(tmp_path / f"redis-{len(made)}", port)
            made.append(self)

    try:
        yield Factory
    finally:
        for server in made:
            server.kill()
