"""The ``voxwire`` command line."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from voxwire import cli_admin

#: ``voxwire talk``'s default server (the OpenAI dialect's WebSocket).


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``voxwire`` command."""
    from voxwire import __version__

    p = argparse.ArgumentParser(prog="voxwire", description="voxwire: realtime voice audio engine")
    p.add_argument("--version", action="version", version=f"voxwire {__version__}")
    p.add_argument("--debug", action="store_true", help="show tracebacks of failures")
    sub = p.add_subparsers(dest="command", required=True)
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
    t = sub.add_parser("talk", help="stream a WAV file to a realtime server, play the answer")
    t.add_argument(
        "wav", nargs="?", help="PCM16 WAV file (mono or stereo, any supported rate; openai)"
    )
    t.add_argument(
        "--dialect",
        choices=("openai", "chatstream", "atoms", "rtguide", "amigo"),
        default="openai",
        help="the server's API (default openai)",
    )
    t.add_argument("--service", default="default", help="amigo: service_id")
    t.add_argument("--url", default=None, help="server URL (default: the dialect's on :8000)")
    t.add_argument("--text", default="Hello! How are you today?", help="chatstream: message")
    t.add_argument("--agent-id", default="echo", help="chatstream, atoms: the agent")
    t.add_argument("--api-key", default=None)
    t.add_argument("--out", default="answer.wav", help="WAV file for the answer")
    t.add_argument("--speed", type=float, default=1.0, help="x real time (0: no pacing)")
    t.add_argument("--username", default=None, help="rtguide: the user to log in as")
    t.add_argument("--voice", default="en-us", help="rtguide: the answer's voice")
    s = sub.add_parser("serve", help="serve the realtime API (OpenAI dialect) over WebSocket")
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
    p = build_parser()
    for action in p._subparsers._group_actions if p._subparsers else []:
        for sp in getattr(action, "choices", {}).values():
            for a in sp._actions:
                a.default = argparse.SUPPRESS
    return set(vars(p.parse_args(argv)))


def serve(
    args: argparse.Namespace, explicit: set[str] | None = None, argv: Sequence[str] = ()
) -> int:
    """``voxwire serve`` (``argv``: its own arguments, for the workers of ``--workers``)."""
    import os
    import sys

    from voxwire.asr import load_asr
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
            print(f"voxwire serve: {e}", file=sys.stderr)
            return 2
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
            print(
                "voxwire serve: an API key must be 1 to 4096 printable ASCII characters "
                "without spaces (check --api-key and VOXWIRE_API_KEYS)",
                file=sys.stderr,
            )
            return 2
    _setup_logging(args.log_level, args.log_format)
    if not keys and args.host not in LOOPBACK:
        print(
            f"voxwire serve: no API key configured, so only loopback may be bound, not "
            f"{args.host}. Pass --api-key (or set VOXWIRE_API_KEYS) to serve other hosts.",
            file=sys.stderr,
        )
        return 2
    if not keys:
        print("voxwire serve: no API key given: loopback only; keys or users in the store apply.")
    try:
        asr = load_asr(args.asr)
    except ImportError:
        print(
            "voxwire serve: --asr pocketsphinx needs the pocketsphinx package: "
            "pip install 'voxwire[asr]'",
            file=sys.stderr,
        )
        return 2
    if args.workers < 1:
        print("voxwire serve: --workers must be at least 1", file=sys.stderr)
        return 2
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
        store_url=args.store,
        config_file=file_cfg,
    )
    from voxwire.server import serve as run_server

    def ready(port: int) -> None:
        print(f"voxwire: serving ws://{args.host}:{port}/v1/realtime", flush=True)

    from voxwire.workers import IsolatedASR

    if isinstance(asr, IsolatedASR):
        asr.start()  # load the model now, not on the first transcription
    try:
        run_server(
            cfg,
            args.host,
            args.port,
            driver=args.driver,
            ready=ready,
            reuse_port=args.reuse_port,
        )
    finally:
        if isinstance(asr, IsolatedASR):
            asr.close()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``voxwire`` command."""
    args = build_parser().parse_args(argv)
    if args.command == "bench":
        from voxwire import bench

        return bench.main(quick=args.quick, json_path=args.json, runs=args.runs)
    if args.command == "serve":
        raw = list(sys.argv[1:] if argv is None else argv)
        own = raw[raw.index("serve") + 1 :] if "serve" in raw else []
        return serve(args, _explicit(argv), own)
    if args.command in cli_admin.COMMANDS:
        return cli_admin.run(args)
    if args.command == "demo":
        from voxwire import demo

        return demo.demo(quick=args.quick, out_wav=args.out)
    if args.command == "talk":
        from voxwire import demo

        if args.dialect == "rtguide":
            import os

            from voxwire.clients import rtguide

            password = os.environ.get("VOXWIRE_PASSWORD")
            if args.wav is None or not args.username or password is None:
                print(
                    "voxwire talk --dialect rtguide: give a WAV file, --username and "
                    "$VOXWIRE_PASSWORD"
                )
                return 2
            return rtguide.talk(
                args.wav,
                args.url or "http://127.0.0.1:8000",
                args.username,
                password,
                args.out,
                args.speed,
                voice=args.voice,
            )
        if args.dialect == "chatstream":
            from voxwire.clients import chatstream

            url = args.url or "ws://127.0.0.1:8000/v1/chat/stream"
            return chatstream.talk(
                url, args.api_key, args.text, args.out, args.speed, agent_id=args.agent_id
            )
        if args.dialect == "amigo":
            from voxwire.clients import amigo

            url = args.url or (
                "ws://127.0.0.1:8000/v1/default/conversation/converse_realtime"
                "?response_format=voice&audio_format=pcm"
            )
            return amigo.talk(
                url,
                args.api_key,
                service=args.service,
                wav=args.wav,
                text=args.text,
                out_wav=args.out,
                speed=args.speed,
            )
        if args.wav is None:
            print("voxwire talk: give a WAV file (or --dialect chatstream --text ...)")
            return 2
        if args.dialect == "atoms":
            return demo.talk_atoms(
                args.wav,
                args.url or "http://127.0.0.1:8000",
                args.api_key,
                args.agent_id,
                args.out,
                args.speed,
            )
        url = args.url or "ws://127.0.0.1:8000/v1/realtime"
        return demo.talk(args.wav, url, args.api_key, args.out, args.speed)
    raise AssertionError(args.command)  # argparse only lets known commands through


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
