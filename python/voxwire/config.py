"""The configuration file of ``voxwire serve`` (``voxwire.toml``).

:func:`load_config` reads the file with the standard library's :mod:`tomllib` into frozen
dataclasses (:class:`Config` and what it holds); :meth:`Config.default` is the embedded
configuration used without a file. Every problem (an unknown key, a wrong type, a duplicate
id, a reference to something that does not exist, a missing file) raises
:class:`voxwire.errors.ConfigError`, whose message is one line naming the file, the table or
key, and what was expected. Relative paths are taken from the config file's folder.

The registry built from a config (agents, voices, orgs, tools, avatars, backgrounds and avatar
configs) is :class:`voxwire.registry.Registry`; docs/config.md is the reference of every key.

Values are immutable after load: lists become tuples and tables become read-only mappings
(:func:`thaw` turns them back into plain ``dict``/``list`` for JSON encoding).
"""

from __future__ import annotations

import math
import os
import re
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, TypeAlias, TypeVar

from voxwire.errors import ConfigError

__all__ = [
    "ECHO_AGENT",
    "AgentEntry",
    "AvatarEntry",
    "ChatstreamSettings",
    "Config",
    "JsonValue",
    "Org",
    "Scalar",
    "ServerSettings",
    "Service",
    "Tool",
    "VoiceEntry",
    "load_config",
    "render",
    "thaw",
]

#: A variable's value: what TOML, JSON query strings and atoms' ``variables`` can carry.
Scalar: TypeAlias = str | int | float | bool
#: A frozen JSON value: tables are read-only mappings, arrays are tuples.
JsonValue: TypeAlias = "str | int | float | bool | tuple[JsonValue, ...] | Mapping[str, JsonValue]"

#: The largest config file read (a config is a few KiB; this bounds a mistaken path).
MAX_CONFIG_BYTES = 4 << 20

_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+-]{0,127}\Z")
_TOOL_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}\Z")
_VAR_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}\Z")
_IMPLEMENTATION = re.compile(
    r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*:[A-Za-z_][A-Za-z0-9_]*\Z"
)
_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")

VAD_ENGINES = ("spectral", "silero", "webrtc", "energy")
ASR_ENGINES = ("auto", "pocketsphinx", "none")
DRIVERS = ("websockets", "asgi")
STORE_SCHEMES = ("sqlite", "redis", "rediss", "unix")


# --- templates -----------------------------------------------------------------------------


def render(template: str, variables: Mapping[str, object]) -> str:
    """``template`` with each ``{name}`` replaced by ``variables[name]``.

    Only a brace pair around a plain identifier (letters, digits, ``_``; not starting with a
    digit) is a placeholder. A placeholder whose name is not in ``variables``, or whose value is
    not exactly a ``str``, ``int``, ``float`` or ``bool``, stays as written; so do ``{0}``,
    ``{x.y}``, ``{x[0]}``, ``{x!r}``, ``{}`` and unbalanced braces. Nothing is evaluated: no
    attribute or item access, no format specs, no ``__str__`` of foreign objects (booleans
    render as ``true``/``false``). Substitution is one pass: a value that itself contains
    ``{name}`` is not expanded again.
    """

    def one(m: re.Match[str]) -> str:
        name = m.group(1)
        if name not in variables:
            return m.group(0)
        value = variables[name]
        kind = type(value)
        if kind is bool:
            return "true" if value else "false"
        if kind is str:
            return str.__str__(value)
        if kind is int:
            return int.__repr__(value)
        if kind is float:
            return float.__repr__(value)
        return m.group(0)

    return _PLACEHOLDER.sub(one, template)


def _placeholders(template: str) -> tuple[str, ...]:
    return tuple(dict.fromkeys(_PLACEHOLDER.findall(template)))


# --- frozen JSON -----------------------------------------------------------------------------


def thaw(value: Any) -> Any:
    """A plain, mutable, JSON-encodable copy of a frozen value (mappings: dicts, tuples: lists)."""
    if isinstance(value, Mapping):
        return {str(k): thaw(v) for k, v in value.items()}
    if isinstance(value, tuple | list):
        return [thaw(v) for v in value]
    return value


# --- the model -----------------------------------------------------------------------------


@dataclass(frozen=True)
class ServerSettings:
    """The ``[server]`` table: what ``voxwire serve``'s command-line options set.

    Options given on the command line take precedence over the file. ``api_keys`` is left out
    of ``repr`` so that logging the settings never shows a key.
    """

    host: str = "127.0.0.1"
    port: int = 8000
    api_keys: tuple[str, ...] = field(default=(), repr=False)
    #: State store URL (``sqlite:///path`` or ``redis://host:port/db``); None: the default
    #: SQLite file. Kept verbatim (never resolved against the config folder), and left out of
    #: ``repr`` since a Redis URL may hold a password.
    store: str | None = field(default=None, repr=False)
    #: The agent a session gets when it names none (``--agent``); None: the first agent.
    default_agent: str | None = None
    vad: str = "silero"
    idle_timeout: float = 300.0
    max_message_bytes: int = 1 << 20
    max_send_queue: int = 256
    max_buffer_ms: int = 5 * 60 * 1000
    max_items: int = 512
    responses_per_minute: int = 600
    max_delta_ms: int = 200
    max_conversation_bytes: int = 32 << 20
    max_response_events: int = 20_000
    max_response_bytes: int = 32 << 20
    messages_per_minute: int = 12_000
    write_timeout: float = 30.0
    handshake_timeout: float = 10.0
    max_connections: int = 1000
    max_connections_per_peer: int = 64
    max_failed_auth: int = 20
    max_handshakes_per_peer: int = 600
    max_handshakes_per_principal: int = 600
    asr: str = "auto"
    driver: str = "websockets"
    #: The model name sessions report (OpenAI's ``session.model``, ``GET /v1/models``).
    model: str = "voxwire-echo"


@dataclass(frozen=True)
class Tool:
    """A function an agent may call: a JSON-schema function definition."""

    name: str
    description: str = ""
    #: JSON Schema of the arguments (an ``object`` schema), frozen.
    parameters: Mapping[str, JsonValue] = field(
        default_factory=lambda: MappingProxyType({"type": "object", "properties": {}}),
        hash=False,
    )

    def schema(self) -> dict[str, Any]:
        """The definition as a plain dict: type ``function``, name, description, parameters."""
        return {
            "type": "function",
            "name": self.name,
            "description": self.description,
            "parameters": thaw(self.parameters),
        }


@dataclass(frozen=True)
class AgentEntry:
    """An agent of the registry (``[[agents]]``).

    ``id`` is what every dialect names it by: rtguide's ``key``, atoms' and chatstream's
    ``agent_id``, the agent of an amigo service. ``implementation`` is ``"echo"`` or
    ``"module:attribute"`` (a factory or agent object, as ``voxwire serve --agent`` takes).
    """

    id: str
    name: str
    description: str = ""
    category: tuple[str, ...] = ()
    #: A voice id of the registry; None: the registry's default voice.
    voice: str | None = None
    #: What the agent says first (atoms and amigo open the conversation); a template, like
    #: ``instructions``. None: the agent waits for the user.
    greeting: str | None = None
    #: The system prompt, with ``{variables}`` (see :func:`render`).
    instructions: str = ""
    #: Default values of the template variables; per-call variables override them.
    variables: Mapping[str, Scalar] = field(
        default_factory=lambda: MappingProxyType({}), hash=False
    )
    implementation: str = "echo"
    tools: tuple[Tool, ...] = ()
    #: The model name reported for this agent (rtguide's ``model_id``); None: the server's.
    model: str | None = None

    @property
    def key(self) -> str:
        """The id, by rtguide's name for it."""
        return self.id

    def _merged(self, variables: Mapping[str, object] | None) -> Mapping[str, object]:
        if not variables:
            return self.variables
        merged: dict[str, object] = dict(self.variables)
        merged.update(variables)
        return merged

    def render_instructions(self, variables: Mapping[str, object] | None = None) -> str:
        """The instructions with the defaults of ``variables`` overridden by the given ones."""
        return render(self.instructions, self._merged(variables))

    def render_greeting(self, variables: Mapping[str, object] | None = None) -> str | None:
        """The greeting rendered like the instructions; None when the agent has none."""
        return None if self.greeting is None else render(self.greeting, self._merged(variables))


#: The embedded agent: answers with the user's own words (``voxwire.agents.EchoAgent``).
ECHO_AGENT = AgentEntry(
    id="echo",
    name="Echo",
    description="Answers with your own words: text with the same text, speech with your audio.",
    category=("demo",),
)


@dataclass(frozen=True)
class VoiceEntry:
    """A voice (``[[voices]]``, or found on the machine).

    ``vendor`` and ``output_format`` are what rtguide's ``voice_list`` shows: the special
    voices are ``none`` (vendor ``system``, output ``none``: text only) and ``avatar``
    (vendor ``heygen``, output ``special``: the avatar speaks). ``tts`` says what speaks it:
    ``"espeak-ng"`` (``tts_voice`` is the ``espeak-ng -v`` argument, default the id),
    ``"module:attribute"`` for a TTS plugin, or None (no audio from voxwire).
    """

    id: str
    vendor: str = "custom"
    description: str = ""
    output_format: str = "pcm16"
    language: str | None = None
    gender: str | None = None
    tts: str | None = None
    tts_voice: str | None = None


@dataclass(frozen=True)
class Service:
    """An amigo service (``[[orgs.services]]``): an id clients start conversations with.

    ``version_sets`` maps a ``service_version_set_name`` (amigo's ``release``, ``edge``, or a
    custom name) to an agent id. Empty: every version set name runs ``agent``.
    """

    id: str
    name: str = ""
    description: str = ""
    #: The agent id; None in a config means the registry's default agent (the registry fills it).
    agent: str | None = None
    version_sets: Mapping[str, str] = field(
        default_factory=lambda: MappingProxyType({}), hash=False
    )

    def agent_for(self, version_set: str = "release") -> str | None:
        """The agent id of ``version_set``; None when the service has no such version set."""
        if not self.version_sets:
            return self.agent
        return self.version_sets.get(version_set)


@dataclass(frozen=True)
class Org:
    """An amigo organization (``[[orgs]]``) and its services."""

    id: str
    name: str = ""
    services: tuple[Service, ...] = ()

    def service(self, service_id: str) -> Service | None:
        """The service with this id, or None."""
        for s in self.services:
            if s.id == service_id:
                return s
        return None


@dataclass(frozen=True)
class AvatarEntry:
    """An avatar (``[[avatars]]``): what rtguide's ``avatar_list`` shows."""

    id: str
    name: str = ""
    default_voice: str | None = None
    preview: str = ""
    is_public: bool = True
    status: str = "ACTIVE"
    created_at: int = 0


@dataclass(frozen=True)
class ChatstreamSettings:
    """The ``[chatstream]`` table: folders of background images and avatar config files."""

    backgrounds_dir: Path | None = None
    avatar_configs_dir: Path | None = None


@dataclass(frozen=True)
class Config:
    """A whole configuration: ``voxwire.toml`` as loaded, or the embedded default."""

    #: The file it came from; None for the embedded default and for text without a file.
    path: Path | None = None
    server: ServerSettings = field(default_factory=ServerSettings)
    #: Never empty: a file without ``[[agents]]`` gets the embedded echo agent.
    agents: tuple[AgentEntry, ...] = (ECHO_AGENT,)
    voices: tuple[VoiceEntry, ...] = ()
    #: The tool catalog (``[[tools]]``); agents' inline tools are added by the registry.
    tools: tuple[Tool, ...] = ()
    #: Empty: every org and every service id is accepted and runs the default agent.
    orgs: tuple[Org, ...] = ()
    avatars: tuple[AvatarEntry, ...] = ()
    chatstream: ChatstreamSettings = field(default_factory=ChatstreamSettings)

    @classmethod
    def default(cls) -> Config:
        """The embedded configuration: the echo agent, open orgs, no folders."""
        return cls()

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Config:
        """Reads and checks a ``voxwire.toml`` (see :func:`load_config`)."""
        return load_config(path)

    @classmethod
    def parse(cls, text: str, *, path: str | os.PathLike[str] | None = None) -> Config:
        """Checks TOML text; relative paths are taken from ``path``'s folder (or the cwd)."""
        label = None if path is None else os.fspath(path)
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as e:
            raise ConfigError(label, "", f"not valid TOML ({e})") from None
        base = Path(label).resolve().parent if label is not None else Path.cwd()
        return _Loader(label, base).config(data, None if label is None else Path(label))


def load_config(path: str | os.PathLike[str]) -> Config:
    """Reads and checks a ``voxwire.toml``; every problem is a one-line ConfigError."""
    label = os.fspath(path)
    try:
        with open(label, "rb") as f:
            raw = f.read(MAX_CONFIG_BYTES + 1)
    except OSError as e:
        raise ConfigError(
            label, "", f"cannot read the file ({e.strerror or type(e).__name__})"
        ) from None
    if len(raw) > MAX_CONFIG_BYTES:
        raise ConfigError(label, "", f"larger than {MAX_CONFIG_BYTES} bytes")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ConfigError(label, "", f"not UTF-8 text (byte {e.start})") from None
    return Config.parse(text, path=label)


# --- the loader -----------------------------------------------------------------------------

_T = TypeVar("_T")
_MISSING: Any = object()


def _type_name(value: object) -> str:
    names = {
        bool: "a boolean",
        int: "an integer",
        float: "a float",
        str: "a string",
        list: "an array",
        dict: "a table",
    }
    return names.get(type(value), f"a TOML {type(value).__name__}")


def _show(value: str) -> str:
    """A short, one-line rendering of a name for a message (never used for secrets)."""
    return repr(value if len(value) <= 60 else value[:57] + "...")


class _Table:
    """Reads one TOML table, remembering which keys were read (the rest are unknown)."""

    def __init__(self, loader: _Loader, where: str, data: object) -> None:
        self.loader, self.where = loader, where
        if not isinstance(data, dict):
            raise loader.error(where, f"expected a table, got {_type_name(data)}")
        self.data: dict[str, Any] = data
        self.seen: set[str] = set()

    def at(self, key: str) -> str:
        return f"{self.where}.{key}" if self.where else key

    def fail(self, key: str, problem: str) -> ConfigError:
        return self.loader.error(self.at(key), problem)

    def get(
        self,
        key: str,
        check: Callable[[Any], bool],
        expected: str,
        default: Any = _MISSING,
    ) -> Any:
        self.seen.add(key)
        if key not in self.data:
            if default is _MISSING:
                raise self.fail(key, f"missing (expected {expected})")
            return default
        value = self.data[key]
        if not check(value):
            raise self.fail(key, f"expected {expected}, got {_type_name(value)}")
        return value

    def text(self, key: str, default: Any = _MISSING, *, expected: str = "a string") -> Any:
        return self.get(key, lambda v: isinstance(v, str), expected, default)

    def opt_str(self, key: str) -> str | None:
        value: str | None = self.text(key, None)
        return value

    def ident(self, key: str, default: Any = _MISSING, *, what: str = "an id") -> Any:
        value = self.text(key, default, expected=f"{what} (a string)")
        if value is not None and value is not default and not _ID.match(value):
            raise self.fail(
                key,
                f"expected {what}: 1-128 letters, digits, '_', '.', '+' or '-', starting with a "
                f"letter or digit, got {_show(value)}",
            )
        return value

    def integer(self, key: str, default: int, *, lo: int, hi: int) -> int:
        value: int = self.get(
            key,
            lambda v: type(v) is int,
            f"an integer from {lo} to {hi}",
            default,
        )
        if not lo <= value <= hi:
            raise self.fail(key, f"expected an integer from {lo} to {hi}, got {value}")
        return value

    def number(self, key: str, default: float, *, lo: float, hi: float) -> float:
        expected = f"a number from {lo:g} to {hi:g}"
        value = self.get(key, lambda v: type(v) in (int, float), expected, default)
        value = float(value)
        if not (math.isfinite(value) and lo <= value <= hi):
            raise self.fail(key, f"expected {expected}, got {value:g}")
        return value

    def boolean(self, key: str, default: bool) -> bool:
        value: bool = self.get(key, lambda v: type(v) is bool, "a boolean", default)
        return value

    def choice(self, key: str, default: str, choices: Sequence[str]) -> str:
        expected = "one of " + ", ".join(repr(c) for c in choices)
        value: str = self.text(key, default, expected=expected)
        if value not in choices:
            raise self.fail(key, f"expected {expected}, got {_show(value)}")
        return value

    def strs(self, key: str, *, expected: str = "an array of strings") -> tuple[str, ...]:
        value = self.get(
            key,
            lambda v: isinstance(v, list) and all(isinstance(x, str) for x in v),
            expected,
            [],
        )
        return tuple(value)

    def tables(self, key: str) -> list[_Table]:
        value = self.get(
            key,
            lambda v: isinstance(v, list) and all(isinstance(x, dict) for x in v),
            f"an array of tables ([[{self.at(key)}]])",
            [],
        )
        return [_Table(self.loader, f"{self.at(key)}[{i}]", x) for i, x in enumerate(value)]

    def table(self, key: str) -> _Table:
        self.seen.add(key)
        return _Table(self.loader, self.at(key), self.data.get(key, {}))

    def path(self, key: str, *, kind: str) -> Path | None:
        value: str | None = self.text(key, None, expected="a path (a string)")
        if value is None:
            return None
        if "\0" in value:
            raise self.fail(key, "expected a path, got a string with a NUL character")
        p = Path(value)
        p = p if p.is_absolute() else self.loader.base / p
        if kind == "dir" and not p.is_dir():
            raise self.fail(key, f"expected an existing folder, {_show(str(p))} is not one")
        return p

    def done(self, *, renamed: Mapping[str, str] | None = None) -> None:
        unknown = [k for k in self.data if k not in self.seen]
        if unknown:
            key = unknown[0]
            hint = renamed.get(key) if renamed else None
            known = ", ".join(sorted(self.seen))
            expected = f"did you mean {hint!r}?" if hint else f"expected one of: {known}"
            raise self.fail(key, f"unknown key ({expected})")


def _freeze_json(loader: _Loader, where: str, value: Any, depth: int = 0) -> JsonValue:
    """A JSON value from TOML, frozen; TOML dates and times are refused."""
    if depth > 32:
        raise loader.error(where, "nested deeper than 32 levels")
    if isinstance(value, dict):
        return MappingProxyType(
            {k: _freeze_json(loader, f"{where}.{k}", v, depth + 1) for k, v in value.items()}
        )
    if isinstance(value, list):
        return tuple(
            _freeze_json(loader, f"{where}[{i}]", v, depth + 1) for i, v in enumerate(value)
        )
    if type(value) in (str, int, float, bool):
        if type(value) is float and not math.isfinite(value):
            raise loader.error(where, "expected a JSON value, got a non-finite float")
        return value  # type: ignore[no-any-return]
    raise loader.error(where, f"expected a JSON value, got {_type_name(value)}")


class _Loader:
    def __init__(self, label: str | None, base: Path) -> None:
        self.label, self.base = label, base

    def error(self, where: str, problem: str) -> ConfigError:
        return ConfigError(self.label, where, problem)

    # -- the whole file --

    def config(self, data: dict[str, Any], path: Path | None) -> Config:
        root = _Table(self, "", data)
        server = self.server(root.table("server"))
        catalog = self.tool_list(root.tables("tools"))
        by_name = {t.name: t for t in catalog}
        agents = tuple(self.agent(t, by_name) for t in root.tables("agents")) or (ECHO_AGENT,)
        self.unique(agents, "agents", "agent id")
        ids = {a.id for a in agents}
        if server.default_agent is not None and server.default_agent not in ids:
            raise self.error(
                "server.default_agent",
                f"unknown agent {_show(server.default_agent)} (expected one of the [[agents]] ids)",
            )
        voices = tuple(self.voice(t) for t in root.tables("voices"))
        self.unique(voices, "voices", "voice id")
        for v in voices:
            if v.id in ("none", "avatar"):
                raise self.error("voices", f"voice id {v.id!r} is reserved (a special voice)")
        orgs = tuple(self.org(t, ids) for t in root.tables("orgs"))
        self.unique(orgs, "orgs", "org id")
        avatars = tuple(self.avatar(t) for t in root.tables("avatars"))
        self.unique(avatars, "avatars", "avatar id")
        chat_t = root.table("chatstream")
        chat = ChatstreamSettings(
            backgrounds_dir=chat_t.path("backgrounds_dir", kind="dir"),
            avatar_configs_dir=chat_t.path("avatar_configs_dir", kind="dir"),
        )
        chat_t.done()
        root.done(renamed={"agent": "agents", "voice": "voices", "org": "orgs", "tool": "tools"})
        return Config(
            path=path,
            server=server,
            agents=agents,
            voices=voices,
            tools=catalog,
            orgs=orgs,
            avatars=avatars,
            chatstream=chat,
        )

    def unique(self, items: Sequence[Any], where: str, what: str) -> None:
        seen: set[str] = set()
        for i, item in enumerate(items):
            if item.id in seen:
                raise self.error(f"{where}[{i}].id", f"duplicate {what} {_show(item.id)}")
            seen.add(item.id)

    # -- tables --

    def server(self, t: _Table) -> ServerSettings:
        d = ServerSettings()
        host: str = t.text("host", d.host)
        if not host or any(c.isspace() for c in host):
            raise t.fail("host", "expected an address or host name")
        store = t.text("store", None, expected="a store URL (a string)")
        if store is not None:
            scheme = store.partition(":")[0].lower()
            if scheme not in STORE_SCHEMES or ":" not in store:
                # The URL itself is not shown: it may carry a password.
                raise t.fail(
                    "store", "expected a URL starting with sqlite:, redis:, rediss: or unix:"
                )
        keys = t.strs("api_keys", expected="an array of API keys (strings)")
        for i, k in enumerate(keys):
            if not k or any(c.isspace() for c in k):
                raise t.fail(f"api_keys[{i}]", "expected a non-empty key without whitespace")
        settings = ServerSettings(
            host=host,
            port=t.integer("port", d.port, lo=0, hi=65535),
            api_keys=keys,
            store=store,
            default_agent=t.ident("default_agent", None, what="an agent id"),
            vad=t.choice("vad", d.vad, VAD_ENGINES),
            idle_timeout=t.number("idle_timeout", d.idle_timeout, lo=1.0, hi=86400.0),
            max_message_bytes=t.integer(
                "max_message_bytes", d.max_message_bytes, lo=1024, hi=1 << 30
            ),
            max_send_queue=t.integer("max_send_queue", d.max_send_queue, lo=1, hi=1 << 20),
            max_buffer_ms=t.integer("max_buffer_ms", d.max_buffer_ms, lo=1000, hi=24 * 3600 * 1000),
            max_items=t.integer("max_items", d.max_items, lo=1, hi=1 << 20),
            responses_per_minute=t.integer(
                "responses_per_minute", d.responses_per_minute, lo=1, hi=1 << 20
            ),
            max_delta_ms=t.integer("max_delta_ms", d.max_delta_ms, lo=10, hi=10_000),
            max_conversation_bytes=t.integer(
                "max_conversation_bytes", d.max_conversation_bytes, lo=1 << 16, hi=1 << 34
            ),
            max_response_events=t.integer(
                "max_response_events", d.max_response_events, lo=10, hi=1 << 24
            ),
            max_response_bytes=t.integer(
                "max_response_bytes", d.max_response_bytes, lo=1 << 12, hi=1 << 34
            ),
            messages_per_minute=t.integer(
                "messages_per_minute", d.messages_per_minute, lo=1, hi=1 << 24
            ),
            write_timeout=t.number("write_timeout", d.write_timeout, lo=0.0, hi=86400.0),
            handshake_timeout=t.number("handshake_timeout", d.handshake_timeout, lo=0.1, hi=3600.0),
            max_connections=t.integer("max_connections", d.max_connections, lo=1, hi=1 << 24),
            max_connections_per_peer=t.integer(
                "max_connections_per_peer", d.max_connections_per_peer, lo=1, hi=1 << 24
            ),
            max_failed_auth=t.integer("max_failed_auth", d.max_failed_auth, lo=1, hi=1 << 24),
            max_handshakes_per_peer=t.integer(
                "max_handshakes_per_peer", d.max_handshakes_per_peer, lo=1, hi=1 << 24
            ),
            max_handshakes_per_principal=t.integer(
                "max_handshakes_per_principal", d.max_handshakes_per_principal, lo=1, hi=1 << 24
            ),
            asr=t.choice("asr", d.asr, ASR_ENGINES),
            driver=t.choice("driver", d.driver, DRIVERS),
            model=t.text("model", d.model),
        )
        t.done(
            renamed={
                "agent": "default_agent",
                "api_key": "api_keys",
                "idle_timeout_s": "idle_timeout",
            }
        )
        return settings

    def tool(self, t: _Table) -> Tool:
        name: str = t.text("name")
        if not _TOOL_NAME.match(name):
            raise t.fail("name", f"expected 1-64 letters, digits, '_' or '-', got {_show(name)}")
        description: str = t.text("description", "")
        params_raw = t.get(
            "parameters", lambda v: isinstance(v, dict), "a table (a JSON Schema)", None
        )
        where = t.at("parameters")
        if params_raw is None:
            params_raw = {"type": "object", "properties": {}}
        self.check_schema(where, params_raw)
        params = _freeze_json(self, where, params_raw)
        assert isinstance(params, Mapping)
        t.done()
        return Tool(name=name, description=description, parameters=params)

    def check_schema(self, where: str, schema: dict[str, Any]) -> None:
        """The shape a function's parameters must have: an object schema."""
        kind = schema.get("type", "object")
        if kind != "object":
            raise self.error(
                f"{where}.type", 'expected "object" (function parameters are an object)'
            )
        props = schema.get("properties", {})
        if not isinstance(props, dict) or not all(isinstance(p, dict) for p in props.values()):
            raise self.error(f"{where}.properties", "expected a table of JSON Schemas")
        required = schema.get("required", [])
        if not isinstance(required, list) or not all(isinstance(r, str) for r in required):
            raise self.error(f"{where}.required", "expected an array of property names")
        for r in required:
            if r not in props:
                raise self.error(
                    f"{where}.required", f"names {_show(r)}, which is not in properties"
                )

    def tool_list(self, tables: list[_Table]) -> tuple[Tool, ...]:
        tools = tuple(self.tool(t) for t in tables)
        seen: set[str] = set()
        for i, tool in enumerate(tools):
            if tool.name in seen:
                raise self.error(f"tools[{i}].name", f"duplicate tool name {_show(tool.name)}")
            seen.add(tool.name)
        return tools

    def agent(self, t: _Table, catalog: Mapping[str, Tool]) -> AgentEntry:
        agent_id: str = t.ident("id", what="an agent id")
        t.where = f"{t.where} (id {agent_id!r})"
        implementation: str = t.text(
            "implementation", "echo", expected="'echo' or 'module:attribute'"
        )
        if implementation != "echo" and not _IMPLEMENTATION.match(implementation):
            raise t.fail(
                "implementation",
                f"expected 'echo' or 'module:attribute', got {_show(implementation)}",
            )
        variables_t = t.table("variables")
        variables: dict[str, Scalar] = {}
        for name in list(variables_t.data):
            if not _VAR_NAME.match(name):
                raise variables_t.fail(name, "expected a variable name (letters, digits, '_')")
            variables[name] = variables_t.get(
                name,
                lambda v: type(v) in (str, int, float, bool),
                "a string, number or boolean",
            )
        variables_t.done()
        tools: list[Tool] = []
        raw_tools = t.get(
            "tools",
            lambda v: isinstance(v, list) and all(isinstance(x, str | dict) for x in v),
            "an array of tool names and tool tables",
            [],
        )
        for i, entry in enumerate(raw_tools):
            where = f"{t.at('tools')}[{i}]"
            if isinstance(entry, str):
                if entry not in catalog:
                    raise self.error(
                        where, f"unknown tool {_show(entry)} (expected a name from [[tools]])"
                    )
                tools.append(catalog[entry])
            else:
                tools.append(self.tool(_Table(self, where, entry)))
        names = [x.name for x in tools]
        for name in names:
            if names.count(name) > 1:
                raise t.fail("tools", f"tool {_show(name)} is listed twice")
        agent = AgentEntry(
            id=agent_id,
            name=t.text("name", agent_id),
            description=t.text("description", ""),
            category=t.strs("category"),
            voice=t.ident("voice", None, what="a voice id"),
            greeting=t.opt_str("greeting"),
            instructions=t.text("instructions", ""),
            variables=MappingProxyType(variables),
            implementation=implementation,
            tools=tuple(tools),
            model=t.opt_str("model"),
        )
        t.done(renamed={"key": "id", "prompt": "instructions", "agent_id": "id"})
        return agent

    def voice(self, t: _Table) -> VoiceEntry:
        voice_id: str = t.ident("id", what="a voice id")
        t.where = f"{t.where} (id {voice_id!r})"
        tts = t.opt_str("tts")
        if tts is not None and tts != "espeak-ng" and not _IMPLEMENTATION.match(tts):
            raise t.fail("tts", f"expected 'espeak-ng' or 'module:attribute', got {_show(tts)}")
        v = VoiceEntry(
            id=voice_id,
            vendor=t.text("vendor", "custom"),
            description=t.text("description", ""),
            output_format=t.choice("output_format", "pcm16", ("pcm16", "none", "special")),
            language=t.opt_str("language"),
            gender=t.opt_str("gender"),
            tts=tts,
            tts_voice=t.opt_str("tts_voice"),
        )
        t.done(renamed={"voice_id": "id", "format": "output_format"})
        return v

    def org(self, t: _Table, agent_ids: set[str]) -> Org:
        org_id: str = t.ident("id", what="an org id")
        t.where = f"{t.where} (id {org_id!r})"
        name: str = t.text("name", org_id)
        services = tuple(self.service(s, agent_ids) for s in t.tables("services"))
        self.unique(services, t.at("services"), "service id")
        t.done(renamed={"service": "services"})
        return Org(id=org_id, name=name, services=services)

    def service(self, t: _Table, agent_ids: set[str]) -> Service:
        service_id: str = t.ident("id", what="a service id")
        t.where = f"{t.where} (id {service_id!r})"

        def known(where: str, agent_id: str) -> str:
            if agent_id not in agent_ids:
                raise self.error(
                    where, f"unknown agent {_show(agent_id)} (expected one of the [[agents]] ids)"
                )
            return agent_id

        agent = t.ident("agent", None, what="an agent id")
        if agent is not None:
            known(t.at("agent"), agent)
        sets_t = t.table("version_sets")
        sets: dict[str, str] = {}
        for set_name in list(sets_t.data):
            if not _ID.match(set_name):
                raise sets_t.fail(set_name, "expected a version set name (letters, digits, '_.+-')")
            sets[set_name] = known(sets_t.at(set_name), sets_t.ident(set_name, what="an agent id"))
        sets_t.done()
        s = Service(
            id=service_id,
            name=t.text("name", service_id),
            description=t.text("description", ""),
            agent=agent,
            version_sets=MappingProxyType(sets),
        )
        t.done(renamed={"service_id": "id", "agent_id": "agent"})
        return s

    def avatar(self, t: _Table) -> AvatarEntry:
        avatar_id: str = t.ident("id", what="an avatar id")
        t.where = f"{t.where} (id {avatar_id!r})"
        a = AvatarEntry(
            id=avatar_id,
            name=t.text("name", avatar_id),
            default_voice=t.ident("default_voice", None, what="a voice id"),
            preview=t.text("preview", ""),
            is_public=t.boolean("is_public", True),
            status=t.text("status", "ACTIVE"),
            created_at=t.integer("created_at", 0, lo=0, hi=1 << 62),
        )
        t.done(renamed={"avatar_id": "id", "pose_name": "name", "normal_preview": "preview"})
        return a
