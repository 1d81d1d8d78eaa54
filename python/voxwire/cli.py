"""The ``voxwire`` command line."""

from __future__ import annotations

import argparse
from collections.abc import Sequence


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``voxwire`` command."""
    p = argparse.ArgumentParser(prog="voxwire", description="voxwire: realtime voice audio engine")
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
    t.add_argument("wav", help="PCM16 WAV file (mono or stereo, any supported rate)")
    t.add_argument("--url", default="ws://127.0.0.1:8000/v1/realtime")
    t.add_argument("--api-key", default=None)
    t.add_argument("--out", default="answer.wav", help="WAV file for the answer")
    t.add_argument("--speed", type=float, default=1.0, help="x real time (0: no pacing)")
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
    s.add_argument("--vad", default="spectral", help="VAD engine: spectral, webrtc or energy")
    s.add_argument("--idle-timeout", type=float, default=300.0, help="seconds (default 300)")
    s.add_argument("--max-message-bytes", type=int, default=1 << 20, help="largest message (1 MiB)")
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


def _setup_logging() -> None:
    import logging

    logging.basicConfig(
        level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("websockets.server").addFilter(_OneLineHandshakeFailures())


def serve(args: argparse.Namespace) -> int:
    """``voxwire serve``."""
    import os
    import sys

    from voxwire.asr import load_asr
    from voxwire.server import MAX_KEY_CHARS, ServerConfig
    from voxwire.session import Limits

    keys = list(args.api_key)
    keys += [k.strip() for k in os.environ.get("VOXWIRE_API_KEYS", "").split(",") if k.strip()]
    for k in keys:
        if not (0 < len(k) <= MAX_KEY_CHARS and k.isascii() and k.isprintable() and " " not in k):
            print(
                "voxwire serve: an API key must be 1 to 4096 printable ASCII characters "
                "without spaces (check --api-key and VOXWIRE_API_KEYS)",
                file=sys.stderr,
            )
            return 2
    _setup_logging()
    if not keys and args.host not in LOOPBACK:
        print(
            f"voxwire serve: no API key configured, so only loopback may be bound, not "
            f"{args.host}. Pass --api-key (or set VOXWIRE_API_KEYS) to serve other hosts.",
            file=sys.stderr,
        )
        return 2
    if not keys:
        print("voxwire serve: no API key configured: serving loopback only, without auth.")
    try:
        asr = load_asr(args.asr)
    except ImportError:
        print(
            "voxwire serve: --asr pocketsphinx needs the pocketsphinx package: "
            "pip install 'voxwire[asr]'",
            file=sys.stderr,
        )
        return 2
    cfg = ServerConfig(
        api_keys=frozenset(keys),
        agent=args.agent,
        limits=Limits(idle_timeout_s=args.idle_timeout),
        max_message_bytes=args.max_message_bytes,
        write_timeout_s=args.write_timeout,
        vad_engine=args.vad,
        asr=asr,
    )
    from voxwire.server import serve as run_server

    def ready(port: int) -> None:
        print(f"voxwire: serving ws://{args.host}:{port}/v1/realtime", flush=True)

    from voxwire.workers import IsolatedASR

    if isinstance(asr, IsolatedASR):
        asr.start()  # load the model now, not on the first transcription
    try:
        run_server(cfg, args.host, args.port, driver=args.driver, ready=ready)
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
        return serve(args)
    if args.command == "demo":
        from voxwire import demo

        return demo.demo(quick=args.quick, out_wav=args.out)
    if args.command == "talk":
        from voxwire import demo

        return demo.talk(args.wav, args.url, args.api_key, args.out, args.speed)
    raise AssertionError(args.command)  # argparse only lets known commands through


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
