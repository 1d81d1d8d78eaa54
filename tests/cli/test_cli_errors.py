"""Every `voxwire` CLI failure, provoked in a subprocess: one line on stderr, the documented
exit code (docs/cli.md), no hang (issue 25)."""

from __future__ import annotations

import os
import socket
import struct
import subprocess
import sys
import tempfile
import wave
from pathlib import Path

import numpy as np
import pytest

import voxwire
from voxwire import clips
from voxwire.demo import spawn_server

pytestmark = [pytest.mark.timeout(120), pytest.mark.slow]

KEY = "cli-errors-key-1"
#: Subprocesses import the voxwire the tests import (the installed package in CI).
ENV = {
    **os.environ,
    "PYTHONPATH": str(Path(voxwire.__file__).parent.parent),
}
for _name in [n for n in ENV if n.startswith("VOXWIRE_") or n == "OPENAI_API_KEY"]:
    del ENV[_name]


OUT_DIR = tempfile.mkdtemp(prefix="voxwire-cli-")


def vox(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None, timeout: float = 60
):
    return subprocess.run(
        [sys.executable, "-m", "voxwire", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**ENV, **(env or {})},
        cwd=cwd or OUT_DIR,  # where a default --out (answer.wav) would go
    )


def one_line(r: subprocess.CompletedProcess[str], code: int, *needles: str) -> str:
    lines = r.stderr.strip().splitlines()
    assert r.returncode == code, (r.returncode, r.stdout, r.stderr)
    assert len(lines) == 1, r.stderr
    for n in needles:
        assert n in lines[0], lines[0]
    return lines[0]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def write_wav(path: Path, x: np.ndarray, rate: int, width: int = 2, channels: int = 1) -> None:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(width)
        w.setframerate(rate)
        w.writeframes(x.tobytes())


# ------------------------------------------------------------------------------------------
# serve: every option checked before anything binds


SERVE_REFUSALS: list[tuple[list[str], dict[str, str], str]] = [
    (["--vad", "bogus"], {}, "invalid choice: 'bogus'"),
    (["--max-connections", "0"], {}, "--max-connections must be at least 1"),
    (["--idle-timeout", "-1"], {}, "--idle-timeout must be more than 0"),
    (["--port", "70000"], {}, "--port must be 0 to 65535"),
    (["--store", "foo://x"], {}, "--store: unknown store URL scheme"),
    (["--store", "sqlite://relative.db"], {}, "absolute path"),
    (["--agent", "nosuch_module_x:agent"], {}, "--agent: cannot import 'nosuch_module_x'"),
    (["--config", "/nonexistent/voxwire.toml"], {}, "cannot read the file"),
    (["--host", "0.0.0.0"], {}, "no API key configured"),
    ([], {"VOXWIRE_PORT": "abc"}, "VOXWIRE_PORT='abc': must be a whole number"),
    ([], {"VOXWIRE_VAD": "bogus"}, "VOXWIRE_VAD='bogus': must be one of"),
    ([], {"VOXWIRE_API_KEY": "has space"}, "an API key must be"),
]


@pytest.mark.network
def test_serve_refuses_bad_options_in_one_line() -> None:
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(4) as pool:
        results = list(
            pool.map(
                lambda c: vox("serve", "--port", str(free_port()), *c[0], env=c[1]),
                SERVE_REFUSALS,
            )
        )
    for (_, _, needle), r in zip(SERVE_REFUSALS, results, strict=True):
        line = one_line(r, 2, needle)
        assert line.startswith("voxwire serve: ")
        assert "has space" not in line  # a key's value is never repeated


def test_serve_bad_config_file(tmp_path: Path) -> None:
    cfg = tmp_path / "voxwire.toml"
    cfg.write_text('[server]\nvad = "bogus"\n')
    one_line(vox("serve", "--config", str(cfg)), 2, str(cfg))
    cfg.write_text("not toml [")
    one_line(vox("serve", "--config", str(cfg)), 2, str(cfg))


@pytest.mark.network
def test_serve_store_that_does_not_answer() -> None:
    port = free_port()  # nothing listens there
    one_line(vox("serve", "--store", f"redis://127.0.0.1:{port}/0"), 3, "store does not answer")


@pytest.mark.network
def test_port_in_use_is_one_line(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        one_line(
            vox("serve", "--port", str(port), "--store", f"sqlite:///{tmp_path}/s.db"),
            3,
            f"port {port} on 127.0.0.1 is already in use",
        )


@pytest.mark.network
def test_agent_from_the_current_folder_is_found(tmp_path: Path) -> None:
    # The module imports, but has no such attribute: the check got as far as the module.
    (tmp_path / "myagent_mod.py").write_text("x = 1\n")
    one_line(
        vox("serve", "--agent", "myagent_mod:agent", "--port", str(free_port()), cwd=tmp_path),
        2,
        "has no attribute 'agent'",
    )


def test_usage_errors_and_version() -> None:
    r = vox("--version")
    assert r.returncode == 0 and r.stdout.strip() == f"voxwire {voxwire.__version__}"
    one_line(vox("nosuchcommand"), 2, "invalid choice")
    one_line(vox("serve", "--port"), 2, "expected one argument")
    one_line(vox("bench", "--runs", "0"), 2, "--runs must be at least 1")
    # Environment variables: the rule is shown in --help, and a flag beats its variable.
    help_text = vox("serve", "--help").stdout
    assert "[env VOXWIRE_MAX_CONNECTIONS]" in help_text and "VOXWIRE_LOG_FORMAT" in help_text
    assert "--url" in vox("talk", "--help").stdout


# ------------------------------------------------------------------------------------------
# talk: files


def test_talk_file_errors(tmp_path: Path) -> None:
    one_line(vox("talk", str(tmp_path / "missing.wav")), 2, "missing.wav: no such file")
    junk = tmp_path / "notes.txt"
    junk.write_text("hello")
    one_line(vox("talk", str(junk)), 2, "not an audio file voxwire reads")
    empty = tmp_path / "empty.wav"
    write_wav(empty, np.zeros(0, np.int16), 16000)
    one_line(vox("talk", str(empty)), 2, "holds no audio samples")
    odd = tmp_path / "odd.wav"
    write_wav(odd, np.zeros(1000, np.int16), 12345)
    one_line(vox("talk", str(odd)), 2, "unsupported sample rate 12345")
    one_line(vox("talk"), 2, "give an audio file")
    one_line(vox("talk", "--timeout", "0", str(odd)), 2, "--timeout must be more than 0")
    one_line(vox("talk", str(odd), "--dialect", "rtguide"), 2, "VOXWIRE_PASSWORD")


@pytest.mark.network
def test_talk_server_not_running_fails_fast(tmp_path: Path) -> None:
    wav = tmp_path / "s.wav"
    x, rate = clips.hello()
    write_wav(wav, x, rate)
    port = free_port()
    for dialect, url in (
        ("openai", f"ws://127.0.0.1:{port}/v1/realtime"),
        ("atoms", f"http://127.0.0.1:{port}"),
        ("amigo", f"ws://127.0.0.1:{port}/v1/o/conversation/converse_realtime"),
        ("chatstream", f"ws://127.0.0.1:{port}/v1/chat/stream"),
    ):
        r = vox("talk", str(wav), "--dialect", dialect, "--url", url, timeout=20)
        one_line(r, 3, "connection refused", "voxwire serve")
    one_line(vox("talk", str(wav), "--dialect", "amigo", "--url", "http://x"), 2, "--url")


# ------------------------------------------------------------------------------------------
# talk: against a real server


def speech_files(tmp_path: Path) -> dict[str, Path]:
    """The bundled sentence as every kind of file `talk` reads."""
    x, rate = clips.hello()
    out: dict[str, Path] = {}
    out["12k"] = tmp_path / "s12k.wav"
    write_wav(out["12k"], np.asarray(voxwire.resample(x, rate, 12000)), 12000)
    out["24bit"] = tmp_path / "s24.wav"
    b = np.frombuffer((x.astype("<i4") << 16).tobytes(), np.uint8).reshape(-1, 4)[:, 1:]
    write_wav(out["24bit"], np.ascontiguousarray(b), rate, width=3)
    out["8bit"] = tmp_path / "s8.wav"
    write_wav(out["8bit"], ((x >> 8) + 128).astype(np.uint8), rate, width=1)
    out["float-stereo-96k"] = tmp_path / "sf.wav"
    y = np.asarray(voxwire.resample(x, rate, 48000)).astype(np.float32) / 32768
    y = np.asarray(voxwire.resample(y, 48000, 96000))
    body = np.column_stack([y, y]).astype("<f4").tobytes()
    fmt = struct.pack("<HHIIHH", 3, 2, 96000, 96000 * 8, 8, 32)
    out["float-stereo-96k"].write_bytes(
        b"RIFF" + struct.pack("<I", 4 + 24 + 8 + len(body)) + b"WAVE"
        + b"fmt " + struct.pack("<I", 16) + fmt
        + b"data" + struct.pack("<I", len(body)) + body
    )  # fmt: skip
    try:
        import lameenc
    except ImportError:
        return out
    enc = lameenc.Encoder()
    enc.set_bit_rate(64)
    enc.set_in_sample_rate(rate)
    enc.set_channels(1)
    enc.set_quality(2)
    out["mp3"] = tmp_path / "s.mp3"
    out["mp3"].write_bytes(enc.encode(x.tobytes()) + enc.flush())
    return out


@pytest.mark.network
def test_talk_against_a_server(tmp_path: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    silent = tmp_path / "silent.wav"
    write_wav(silent, np.zeros(16000, np.int16), 16000)
    files = speech_files(tmp_path)
    (tmp_path / "never_answers.py").write_text(
        "import asyncio\n"
        "class Agent:\n"
        "    async def respond(self, turn):\n"
        "        await asyncio.sleep(3600)\n"
        "        yield None\n"
    )
    store = f"sqlite:///{tmp_path}/state.db"
    with spawn_server("--api-key", KEY, "--store", store, "--asr", "none") as (port, _):
        url = f"ws://127.0.0.1:{port}/v1/realtime"

        def base(name: str) -> tuple[str, ...]:
            return ("--url", url, "--speed", "0", "--out", str(tmp_path / f"{name}.out.wav"))

        # The turns run at once (each plays its answer in real time).
        runs = {
            **{
                name: (("talk", str(path), *base(name)), {"VOXWIRE_API_KEY": KEY})
                for name, path in files.items()
                if name in ("12k", "mp3")
            },
            # OPENAI_API_KEY is read when VOXWIRE_API_KEY is not set.
            "openai-env": (("talk", str(files["24bit"]), *base("e")), {"OPENAI_API_KEY": KEY}),
            "wrong": (("talk", str(files["12k"]), *base("w"), "--api-key", "wrong-key"), {}),
            "wrong-env": (("talk", str(files["12k"]), *base("v")), {"OPENAI_API_KEY": "wrong-k"}),
            "silent-openai": (("talk", str(silent), *base("s1"), "--api-key", KEY), {}),
            "silent-amigo": (
                (
                    "talk",
                    str(silent),
                    *base("s2"),
                    "--api-key",
                    KEY,
                    "--dialect",
                    "amigo",
                    "--url",
                    f"ws://127.0.0.1:{port}/v1/default/conversation/converse_realtime",
                ),
                {},
            ),
        }
        with ThreadPoolExecutor(len(runs)) as pool:
            futures = {k: pool.submit(vox, *a, env=e) for k, (a, e) in runs.items()}
            done = {k: f.result() for k, f in futures.items()}
    for name in ("12k", "mp3", "openai-env"):
        r = done.get(name)
        if r is None:
            continue  # (mp3: lameenc missing)
        assert r.returncode == 0, (name, r.stdout, r.stderr)
        assert "status: completed" in r.stdout
    one_line(done["wrong"], 4, "refused the API key (HTTP 401)")
    line = one_line(done["wrong-env"], 4, "OPENAI_API_KEY")
    assert "wrong-k" not in line
    one_line(done["silent-openai"], 5, "detected no speech")
    one_line(done["silent-amigo"], 5, "detected no speech")
    with spawn_server(
        "--api-key", KEY, "--store", store, "--asr", "none", "--agent", "never_answers:Agent",
        cwd=tmp_path,
    ) as (port, _):  # fmt: skip
        r = vox(
            "talk", str(files["12k"]), "--url", f"ws://127.0.0.1:{port}/v1/realtime",
            "--api-key", KEY, "--speed", "0", "--timeout", "4",
        )  # fmt: skip
        one_line(r, 6, "no answer within 4 s", "the answer did not finish")


def test_the_dsp_alone_without_the_server_packages() -> None:
    # As after `pip install voxwire` (numpy only): the server's packages do not import.
    code = (
        "import sys\n"
        "for m in ('starlette', 'uvicorn', 'websockets', 'prometheus_client', 'h11', 'jwt'):\n"
        "    sys.modules[m] = None\n"
        "import numpy as np, voxwire\n"
        "y = voxwire.resample(np.zeros(480, np.int16), 24000, 16000)\n"
        "assert len(y) == 320 and voxwire.Vad('spectral', frame_ms=10) is not None\n"
        "import voxwire.wav, voxwire.g711, voxwire.bench\n"
        "from voxwire import cli\n"
        "sys.exit(cli.main(sys.argv[1:]))\n"
    )
    for command in ("serve", "demo"):
        r = subprocess.run(
            [sys.executable, "-c", code, command],
            capture_output=True,
            text=True,
            timeout=60,
            env=ENV,
        )
        one_line(r, 7, "pip install 'voxwire[server]'")
