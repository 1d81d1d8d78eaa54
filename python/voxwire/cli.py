"""The ``voxwire`` command line.

Every failure is one line on stderr (``voxwire COMMAND: what went wrong; what to do``) and
an exit code of :class:`ExitCode` (the table is in docs/cli.md); the traceback only with
``--debug``. Every option also comes from an environment variable, ``VOXWIRE_`` and the
option's name in capitals with ``-`` as ``_`` (``--max-connections`` is
``VOXWIRE_MAX_CONNECTIONS``; flags take 1/0, true/false, yes/no, on/off; repeatable options a
comma-separated list); an option on the command line wins over its variable.
"""

from __future__ import annotations

import argparse
import enum
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import NoReturn

from voxwire import cli_admin
from voxwire.errors import CommandError

__all__ = ["ExitCode", "apply_env", "build_parser", "main"]


class ExitCode(enum.IntEnum):
    """The exit codes of ``voxwire`` commands (docs/cli.md)."""

    #: Done.
    OK = 0
    #: The command ran but did not succeed (a turn failed, the server sent an error, a bug).
    FAILED = 1
    #: A bad option, value, file or configuration: nothing was started.
    USAGE = 2
    #: The network: ``talk`` cannot reach the server, ``serve`` cannot bind its address.
    UNREACHABLE = 3
    #: The server refused the credentials.
    AUTH = 4
    #: ``talk``: the server detected no speech in the audio.
    NO_SPEECH = 5
    #: ``talk``: no answer within ``--timeout``.
    TIMEOUT = 6
    #: A package the command needs is not installed (the message says which extra).
    MISSING_PACKAGE = 7
    #: Interrupted (Ctrl-C).
    INTERRUPTED = 130


class _Parser(argparse.ArgumentParser):
    """An argument parser whose usage errors are one line (and a CommandError)."""

    def error(self, message: str) -> NoReturn:
        """Raise the one-line usage error (main prints it)."""
        raise CommandError(f"{message} (see {self.prog} --help)", ExitCode.USAGE)


#: Options that no environment variable sets.
_NO_ENV = frozenset({"help", "version"})
_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off", "")


def env_name(action: argparse.Action) -> str | None:
    """``VOXWIRE_<OPTION>`` of an option (None for positionals, --help and --version)."""
    longs = [o for o in action.option_strings if o.startswith("--")]
    if not longs or action.dest in _NO_ENV or isinstance(action, argparse._VersionAction):
        return None
    return "VOXWIRE_" + longs[0][2:].upper().replace("-", "_")


def _parsers(p: argparse.ArgumentParser) -> list[argparse.ArgumentParser]:
    """``p`` and every subparser under it."""
    out = [p]
    for a in p._actions:
        if isinstance(a, argparse._SubParsersAction):
            for sp in dict.fromkeys(a.choices.values()):
                out += _parsers(sp)
    return out


def _secret(name: str) -> bool:
    return any(w in name for w in ("KEY", "PASSWORD", "TOKEN", "SECRET"))


def apply_env(p: argparse.ArgumentParser, environ: Mapping[str, str]) -> set[str]:
    """Set the defaults of ``p``'s options from ``VOXWIRE_*`` variables; the dests set.

    A value that does not fit the option raises a USAGE CommandError naming the variable
    (never repeating the value of a key or password).
    """
    dests: set[str] = set()
    for parser in _parsers(p):
        for a in parser._actions:
            name = env_name(a)
            if name is None or name not in environ:
                continue
            raw = environ[name]
            shown = "" if _secret(name) else f"={raw!r}"
            try:
                value = _convert(a, raw)
            except (ValueError, TypeError, argparse.ArgumentTypeError) as e:
                raise CommandError(
                    f"environment variable {name}{shown}: {e}", ExitCode.USAGE
                ) from None
            a.default = value
            dests.add(a.dest)
    return dests


def _convert(a: argparse.Action, raw: str) -> object:
    if isinstance(a, argparse._StoreTrueAction | argparse._StoreFalseAction):
        v = raw.strip().lower()
        if v not in _TRUE + _FALSE:
            raise ValueError("use 1 or 0 (true/false, yes/no, on/off)")
        on = v in _TRUE
        return on if isinstance(a, argparse._StoreTrueAction) else not on
    conv = _typed(a.type if callable(a.type) else str)
    if isinstance(a, argparse._AppendAction):
        values = [conv(part.strip()) for part in raw.split(",") if part.strip()]
        for one in values:
            _check_choice(a, one)
        return values
    value = conv(raw)
    _check_choice(a, value)
    return value


def _typed(conv: Callable[[str], object]) -> Callable[[str], object]:
    """``conv`` whose ValueError says what was expected (``int``: a whole number...)."""
    expected = {int: "a whole number", float: "a number"}.get(conv)  # type: ignore[call-overload]
    if expected is None:
        return conv

    def convert(raw: str) -> object:
        try:
            return conv(raw)
        except ValueError:
            raise ValueError(f"must be {expected}") from None

    return convert


def _check_choice(a: argparse.Action, value: object) -> None:
    if a.choices is not None and value not in a.choices:
        choices = ", ".join(map(str, a.choices))
        raise ValueError(f"must be one of {choices}")


def _annotate_env(p: argparse.ArgumentParser) -> None:
    """Say each option's environment variable in its help."""
    for parser in _parsers(p):
        for a in parser._actions:
            name = env_name(a)
            if name is not None and a.help is not None and a.help != argparse.SUPPRESS:
                a.help = f"{a.help} [env {name}]"


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``voxwire`` command (help names each env variable)."""
    p = _build_parser()
    _annotate_env(p)
    return p


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("voxwire")
    except PackageNotFoundError:  # a source tree on PYTHONPATH
        from voxwire import __version__

        return __version__


def _build_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="voxwire",
        description="voxwire: the audio engine and protocol server of realtime voice agents",
        epilog="Every option also reads VOXWIRE_<OPTION> (docs/cli.md); exit codes: docs/cli.md.",
    )
    p.add_argument("--version", action="version", version=f"voxwire {_version()}")
    p.add_argument(
        "--debug",
        action="store_true",
        help="show the traceback of a failure (also after the command)",
    )
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _orig_add = sub.add_parser

    def add_parser(name: str, **kw: object) -> argparse.ArgumentParser:
        sp: argparse.ArgumentParser = _orig_add(name, **kw)  # type: ignore[arg-type]
        # --debug after the command too (the top-level value stays when not given here).
        sp.add_argument(
            "--debug", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS
        )
        return sp

    sub.add_parser = add_parser  # type: ignore[method-assign,assignment]
    b = sub.add_parser("bench", help="benchmark voxwire against its peers in this process")
    b.add_argument("--quick", action="store_true", help="short run (about 15 s)")
    b.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    b.add_argument(
        "--runs",
        type=int,
        default=1,
        metavar="N",
        help="run the suite N times; print each ratio's median and range",
    )
    d = sub.add_parser("demo", help="a voice turn end to end on a local server, with figures")
    d.add_argument("--quick", action="store_true", help="stream at 4x real time")
    d.add_argument("--out", default="voxwire-demo.wav", help="WAV file for the answer")
    t = sub.add_parser("talk", help="stream an audio file to a realtime server, play the answer")
    t.add_argument(
        "wav",
        nargs="?",
        metavar="AUDIO",
        help="the user's turn: WAV (8/16/24/32-bit, float; any rate, mono or stereo), or "
        "MP3/FLAC/OGG with voxwire[audio]",
    )
    t.add_argument(
        "--dialect",
        choices=("openai", "chatstream", "atoms", "rtguide", "amigo"),
        default="openai",
        help="the server's API (default openai)",
    )
    t.add_argument("--service", default="default", help="amigo: service_id")
    t.add_argument(
        "--url",
        default=None,
        help="the server: ws://host:port/path (openai, chatstream, amigo) or http://host:port "
        "(atoms, rtguide); default: the dialect's on 127.0.0.1:8000",
    )
    t.add_argument(
        "--timeout",
        type=float,
        default=60.0,
        metavar="SECONDS",
        help="deadline for the whole turn (default 60); exit code 6 when it passes",
    )
    t.add_argument("--text", default="Hello! How are you today?", help="chatstream: message")
    t.add_argument("--agent-id", default="echo", help="chatstream, atoms: the agent")
    t.add_argument(
        "--api-key",
        default=None,
        help="the server's API key (for --dialect openai also read from OPENAI_API_KEY)",
    )
    t.add_argument("--out", default="answer.wav", help="WAV file for the answer")
    t.add_argument("--speed", type=float, default=1.0, help="x real time (0: no pacing)")
    t.add_argument("--username", default=None, help="rtguide: the user to log in as")
    t.add_argument("--voice", default="en-us", help="rtguide: the answer's voice")
    s = sub.add_parser("serve", help="serve the realtime APIs over WebSocket")
    s.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    s.add_argument("--port", type=int, default=8000, help="port (default 8000; 0 picks one)")
    s.add_argument("--agent", default="echo", help="'echo' (default) or module:attribute")
    s.add_argument(
        "--api-key",
        action="append",
        default=[],
        help="accepted API key (repeatable; also VOXWIRE_API_KEYS, comma-separated)",
    )
    s.add_argument(
        "--config",
        default=None,
        metavar="PATH",
        help="voxwire.toml: agents, voices, orgs and [server] settings (also VOXWIRE_CONFIG); "
        "options given here win over the file",
    )
    s.add_argument(
        "--store",
        default=None,
        metavar="URL",
        help="state store: sqlite:///path or redis://host:port/db (also VOXWIRE_STORE; "
        "default: a SQLite file in the user's state directory)",
    )
    s.add_argument(
        "--workers",
        type=int,
        default=1,
        metavar="N",
        help="server processes on the one port (SO_REUSEPORT; default 1); share state with --store",
    )
    s.add_argument("--reuse-port", action="store_true", help=argparse.SUPPRESS)
    s.add_argument(
        "--vad",
        default="silero",
        choices=("spectral", "silero", "webrtc", "energy"),
        help="VAD engine (default silero)",
    )
    s.add_argument(
        "--log-level",
        default="info",
        choices=("debug", "info", "warning", "error"),
        help="log level (default info: one access line per connection and REST call)",
    )
    s.add_argument(
        "--log-format",
        default="text",
        choices=("text", "json"),
        help="log lines as text (default) or one JSON object each",
    )
    s.add_argument("--idle-timeout", type=float, default=300.0, help="seconds (default 300)")
    s.add_argument("--max-message-bytes", type=int, default=1 << 20, help="largest message (1 MiB)")
    s.add_argument(
        "--max-connections",
        type=int,
        default=1000,
        metavar="N",
        help="open sessions per process; more get HTTP 503 (default 1000)",
    )
    s.add_argument(
        "--max-connections-per-peer",
        type=int,
        default=64,
        metavar="N",
        help="open sessions per client address; more get HTTP 429 (default 64)",
    )
    s.add_argument(
        "--max-handshakes-per-peer",
        type=int,
        default=600,
        metavar="N",
        help="WebSocket handshakes per client address per minute; more get HTTP 429 (default 600)",
    )
    s.add_argument(
        "--max-handshakes-per-principal",
        type=int,
        default=600,
        metavar="N",
        help="WebSocket handshakes per user or key per minute, across every process sharing "
        "the store; more get HTTP 429 (default 600)",
    )
    s.add_argument(
        "--max-failed-auth",
        type=int,
        default=20,
        metavar="N",
        help="failed authentications per client address per minute before its handshakes "
        "get HTTP 429 (default 20)",
    )
    s.add_argument(
        "--handshake-timeout",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="time a client has to complete its opening handshake (default 10)",
    )
    s.add_argument(
        "--write-timeout",
        type=float,
        default=30.0,
        metavar="SECONDS",
        help="drop a client that takes no message for this long (default 30; 0: never)",
    )
    s.add_argument(
        "--asr",
        choices=("auto", "pocketsphinx", "none"),
        default="auto",
        help="user transcripts: pocketsphinx (voxwire[asr], run in worker processes), none, "
        "or auto (default: pocketsphinx when installed)",
    )
    s.add_argument(
        "--driver",
        choices=("websockets", "asgi"),
        default="websockets",
        help="websockets: the websockets library's server (default, the cheapest per "
        "message); asgi: the ASGI app (Starlette) on uvicorn",
    )
    cli_admin.register(sub)
    return p


LOOPBACK = ("127.0.0.1", "::1", "localhost")


class _OneLineHandshakeFailures:
    """A logging filter: a client that breaks off its handshake is one line, not a traceback.

    The websockets server logs every aborted or malformed opening handshake at ERROR level
    with the exception's traceback; that is the client's doing, not the server's.
    """

    def filter(self, record: object) -> bool:
        import logging

        assert isinstance(record, logging.LogRecord)
        if record.getMessage().startswith("opening handshake failed"):
            exc = record.exc_info[1] if record.exc_info else None
            record.msg = "opening handshake failed: %s"
            record.args = (f"{type(exc).__name__}: {exc}" if exc else "unknown",)
            record.exc_info = None
            record.exc_text = None
            record.levelno, record.levelname = logging.INFO, "INFO"
        return True


class _JsonFormatter:
    """One JSON object per log line (``--log-format json``).

    The extra fields of access lines become keys.
    """

    def format(self, record: object) -> str:
        import json
        import logging
        import time

        assert isinstance(record, logging.LogRecord)
        out: dict[str, object] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            out.update(fields)
        if record.exc_info:
            out["exc"] = logging.Formatter().formatException(record.exc_info)
        return json.dumps(out)


def _setup_logging(level: str = "info", fmt: str = "text") -> None:
    import logging

    handler = logging.StreamHandler()
    if fmt == "json":
        handler.setFormatter(_JsonFormatter())  # type: ignore[arg-type]
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # Libraries speak up at WARNING; voxwire's own lines (access lines) follow --log-level.
    for name in ("websockets", "uvicorn", "asyncio"):
        logging.getLogger(name).setLevel(max(logging.WARNING, root.level))
    logging.getLogger("websockets.server").addFilter(_OneLineHandshakeFailures())


#: ``voxwire serve`` options that a config file's ``[server]`` table may also set:
#: option dest -> ServerSettings field. An option given on the command line wins.
_SETTINGS = {
    "host": "host",
    "port": "port",
    "vad": "vad",
    "idle_timeout": "idle_timeout",
    "max_message_bytes": "max_message_bytes",
    "max_connections": "max_connections",
    "max_connections_per_peer": "max_connections_per_peer",
    "max_failed_auth": "max_failed_auth",
    "max_handshakes_per_peer": "max_handshakes_per_peer",
    "max_handshakes_per_principal": "max_handshakes_per_principal",
    "handshake_timeout": "handshake_timeout",
    "write_timeout": "write_timeout",
    "asr": "asr",
    "driver": "driver",
    "store": "store",
}


def _explicit(argv: Sequence[str] | None) -> set[str]:
    """The ``serve`` options given on the command line (not defaulted)."""
    p = _build_parser()
    for sp in _parsers(p):
        for a in sp._actions:
            a.default = argparse.SUPPRESS
    return set(vars(p.parse_args(argv)))


#: What ``voxwire serve`` imports that ``pip install voxwire`` (the DSP alone) lacks.
SERVER_MODULES = ("starlette", "uvicorn", "websockets", "prometheus_client", "h11", "jwt")


def require_server_packages(command: str) -> None:
    """A MISSING_PACKAGE CommandError unless the server extra's packages are installed."""
    import importlib.util

    missing = [m for m in SERVER_MODULES if importlib.util.find_spec(m) is None]
    if missing:
        raise CommandError(
            f"{command} needs the server packages ({', '.join(missing)} missing): "
            "pip install 'voxwire[server]'",
            ExitCode.MISSING_PACKAGE,
        )


def _usage(message: str) -> CommandError:
    return CommandError(message, ExitCode.USAGE)


def _check_limits(args: argparse.Namespace) -> None:
    """Every number of ``serve`` in its range (a USAGE CommandError naming the option)."""
    if not 0 <= args.port <= 65535:
        raise _usage(f"--port must be 0 to 65535, not {args.port}")
    at_least_one = (
        "workers",
        "max_message_bytes",
        "max_connections",
        "max_connections_per_peer",
        "max_handshakes_per_peer",
        "max_handshakes_per_principal",
        "max_failed_auth",
    )
    for dest in at_least_one:
        if getattr(args, dest) < 1:
            opt = "--" + dest.replace("_", "-")
            raise _usage(f"{opt} must be at least 1, not {getattr(args, dest)}")
    import math

    for dest, zero_ok in (
        ("idle_timeout", False),
        ("handshake_timeout", False),
        ("write_timeout", True),
    ):
        v = getattr(args, dest)
        if not math.isfinite(v) or v < 0 or (v == 0 and not zero_ok):
            opt = "--" + dest.replace("_", "-")
            rule = "0 (never) or more" if zero_ok else "more than 0"
            raise _usage(f"{opt} must be {rule} seconds, not {v}")


def _check_bind(host: str, port: int) -> None:
    """Bind and release ``host:port`` now: a port in use is one line, before anything starts."""
    import errno
    import socket

    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as e:
        raise CommandError(
            f"cannot bind {host}: unknown host ({e.strerror}); check --host", ExitCode.UNREACHABLE
        ) from None
    family, _, _, _, addr = infos[0]
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(addr)
        except OSError as e:
            if e.errno == errno.EADDRINUSE:
                raise CommandError(
                    f"port {port} on {host} is already in use (another voxwire serve?): stop "
                    "that server or pick another --port",
                    ExitCode.UNREACHABLE,
                ) from None
            raise CommandError(
                f"cannot bind {host}:{port}: {e.strerror or e}; check --host and --port",
                ExitCode.UNREACHABLE,
            ) from None


def _check_store(url: str | None) -> None:
    """The store URL is one voxwire opens, and the store answers (USAGE / UNREACHABLE)."""
    import asyncio

    from voxwire.errors import InvalidInputError, StoreUnavailableError
    from voxwire.store import open_store

    try:
        store = open_store(url)
    except InvalidInputError as e:
        raise _usage(f"--store: {e}") from None

    async def probe() -> None:
        async with store:
            pass

    try:
        asyncio.run(probe())
    except ImportError as e:
        raise CommandError(
            f"--store needs {e.name or 'a package'}: pip install 'voxwire[server]'",
            ExitCode.MISSING_PACKAGE,
        ) from None
    except (StoreUnavailableError, OSError) as e:
        raise CommandError(
            f"the store does not answer: {e} (check --store / VOXWIRE_STORE)",
            ExitCode.UNREACHABLE,
        ) from None


def serve(
    args: argparse.Namespace, explicit: set[str] | None = None, argv: Sequence[str] = ()
) -> int:
    """``voxwire serve`` (``argv``: its own arguments, for the workers of ``--workers``).

    Every option is checked before anything binds: a bad one raises a CommandError.
    """
    require_server_packages("voxwire serve")
    from voxwire.agents import load_agent
    from voxwire.asr import load_asr, load_partial_asr
    from voxwire.config import Config, load_config
    from voxwire.errors import ConfigError
    from voxwire.gate import ServerLimits
    from voxwire.platform import ServerConfig, usable_key
    from voxwire.session import Limits

    explicit = explicit if explicit is not None else set(vars(args))
    config_path = args.config or os.environ.get("VOXWIRE_CONFIG") or None
    file_cfg: Config | None = None
    if config_path:
        try:
            file_cfg = load_config(config_path)
        except ConfigError as e:
            raise _usage(str(e)) from None
    st = file_cfg.server if file_cfg is not None else None
    if st is not None:
        for dest, name in _SETTINGS.items():
            if dest not in explicit and getattr(st, name) is not None:
                setattr(args, dest, getattr(st, name))
    if args.store is None:
        args.store = os.environ.get("VOXWIRE_STORE") or None
    keys = list(args.api_key) + (list(st.api_keys) if st is not None else [])
    keys += [k.strip() for k in os.environ.get("VOXWIRE_API_KEYS", "").split(",") if k.strip()]
    for k in keys:
        if not usable_key(k):
            raise _usage(
                "an API key must be 1 to 4096 printable ASCII characters without spaces "
                "(check --api-key, VOXWIRE_API_KEY and VOXWIRE_API_KEYS)"
            )
    _check_limits(args)
    if not keys and args.host not in LOOPBACK:
        raise _usage(
            f"no API key configured, so only loopback may be bound, not {args.host}: pass "
            "--api-key (or set VOXWIRE_API_KEYS) to serve other hosts"
        )
    if args.agent != "echo":
        try:
            load_agent(args.agent)
        except (ValueError, TypeError) as e:
            raise _usage(f"--agent: {e}") from None
    _check_store(args.store)
    if not args.reuse_port:  # (a worker of --workers shares its siblings' port)
        _check_bind(args.host, args.port)
    _setup_logging(args.log_level, args.log_format)
    if not keys:
        print("voxwire serve: no API key given: loopback only; keys or users in the store apply.")
    try:
        asr = load_asr(args.asr)
        partial_asr = load_partial_asr(args.asr) if asr is not None else None
    except ImportError:
        raise CommandError(
            "--asr pocketsphinx needs the pocketsphinx package: pip install 'voxwire[asr]'",
            ExitCode.MISSING_PACKAGE,
        ) from None
    if args.workers > 1:
        from voxwire.supervisor import supervise

        return supervise(argv, host=args.host, port=args.port, workers=args.workers)
    base = st or (file_cfg or Config.default()).server
    limits = Limits(
        idle_timeout_s=args.idle_timeout,
        max_buffer_ms=base.max_buffer_ms,
        max_items=base.max_items,
        max_conversation_bytes=base.max_conversation_bytes,
        max_response_events=base.max_response_events,
        max_response_bytes=base.max_response_bytes,
        responses_per_minute=base.responses_per_minute,
        messages_per_minute=base.messages_per_minute,
        max_delta_ms=base.max_delta_ms,
    )
    cfg = ServerConfig(
        api_keys=frozenset(keys),
        agent=args.agent,
        limits=limits,
        max_message_bytes=args.max_message_bytes,
        max_send_queue=base.max_send_queue,
        write_timeout_s=args.write_timeout,
        server_limits=ServerLimits(
            max_connections=args.max_connections,
            max_connections_per_peer=args.max_connections_per_peer,
            failed_auth_per_peer_per_minute=args.max_failed_auth,
            handshakes_per_peer_per_minute=args.max_handshakes_per_peer,
            handshakes_per_principal_per_minute=args.max_handshakes_per_principal,
            handshake_timeout_s=args.handshake_timeout,
        ),
        vad_engine=args.vad,
        model=base.model,
        asr=asr,
        partial_asr=partial_asr,
        store_url=args.store,
        config_file=file_cfg,
    )
    from voxwire.server import serve as run_server

    def ready(port: int) -> None:
        print(f"voxwire: serving ws://{args.host}:{port}/v1/realtime", flush=True)

    from voxwire.workers import IsolatedASR

    pools = [a for a in (asr, partial_asr) if isinstance(a, IsolatedASR)]
    for pool in pools:
        pool.start()  # load the model now, not on the first transcription
    try:
        run_server(
            cfg,
            args.host,
            args.port,
            driver=args.driver,
            ready=ready,
            reuse_port=args.reuse_port,
        )
    except OSError as e:  # the port was taken between the check and the bind
        raise CommandError(
            f"cannot serve on {args.host}:{args.port}: {e.strerror or e}", ExitCode.UNREACHABLE
        ) from None
    finally:
        for pool in pools:
            pool.close()
    return 0


def _debug_requested(argv: Sequence[str]) -> bool:
    v = os.environ.get("VOXWIRE_DEBUG", "").strip().lower()
    return "--debug" in argv or v in _TRUE


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``voxwire`` command: its exit code (docs/cli.md)."""
    raw = list(sys.argv[1:] if argv is None else argv)
    debug = _debug_requested(raw)
    command = next((a for a in raw if not a.startswith("-")), "")
    prefix = f"voxwire {command}".rstrip() if command in _COMMANDS else "voxwire"
    try:
        return _main(raw)
    except CommandError as e:
        if debug:
            import traceback

            traceback.print_exc()
        print(f"{prefix}: {e}", file=sys.stderr)
        return int(e.code)
    except KeyboardInterrupt:
        print(f"{prefix}: interrupted", file=sys.stderr)
        return int(ExitCode.INTERRUPTED)
    except ModuleNotFoundError as e:
        if debug:
            raise
        extra = _EXTRA_OF.get((e.name or "").partition(".")[0])
        if extra is None:
            print(
                f"{prefix}: internal error: {e} (run with --debug for the traceback)",
                file=sys.stderr,
            )
            return int(ExitCode.FAILED)
        print(f"{prefix}: needs the {e.name} package: pip install '{extra}'", file=sys.stderr)
        return int(ExitCode.MISSING_PACKAGE)
    except Exception as e:
        if debug:
            raise
        print(
            f"{prefix}: internal error: {type(e).__name__}: {e} (run with --debug for the "
            "traceback, and please report it)",
            file=sys.stderr,
        )
        return int(ExitCode.FAILED)


_COMMANDS = ("bench", "demo", "talk", "serve", *cli_admin.COMMANDS)
#: The extra that installs an optional package voxwire imports.
_EXTRA_OF = {
    **{m: "voxwire[server]" for m in SERVER_MODULES},
    "redis": "voxwire[server]",
    "cryptography": "voxwire[server]",
    "miniaudio": "voxwire[audio]",
    "lameenc": "voxwire[amigo]",
    "pocketsphinx": "voxwire[asr]",
}


def _main(raw: list[str]) -> int:
    parser = build_parser()
    env_dests = apply_env(parser, os.environ)
    args = parser.parse_args(raw)
    if args.command == "bench":
        from voxwire import bench

        if args.runs < 1:
            raise _usage("--runs must be at least 1")
        return bench.main(quick=args.quick, json_path=args.json, runs=args.runs)
    if args.command == "serve":
        own = raw[raw.index("serve") + 1 :] if "serve" in raw else []
        return serve(args, _explicit(raw) | env_dests, own)
    if args.command in cli_admin.COMMANDS:
        return cli_admin.run(args)
    if args.command == "demo":
        require_server_packages("voxwire demo")
        from voxwire import demo

        return demo.demo(quick=args.quick, out_wav=args.out)
    if args.command == "talk":
        import importlib.util

        if importlib.util.find_spec("websockets") is None:
            raise CommandError(
                "voxwire talk needs the websockets package: pip install 'voxwire[server]'",
                ExitCode.MISSING_PACKAGE,
            )
        from voxwire import talk

        return talk.run(args)
    raise AssertionError(args.command)  # argparse only lets known commands through


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
