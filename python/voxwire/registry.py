"""The registry: agents, voices, orgs and services, tools, avatars, backgrounds, avatar configs.

Every dialect's "list" command answers from one :class:`Registry`: rtguide's ``agent_list``,
``voice_list``, ``tool_catalog`` and ``avatar_list``, amigo's services, atoms' agent ids,
chatstream's ``background_files``, ``avatar_config_files`` and ``set_model_and_conf``.

A registry is built once from a :class:`voxwire.config.Config` (or the embedded default when
there is no config file) and never changes afterwards; to reload, build a new one and swap the
reference. Building it does blocking work (it runs ``espeak-ng --voices`` once, with a timeout,
and reads the chatstream folders), so do it at start-up or in a worker thread, never on the
event loop; every method afterwards only reads memory.

Folders are read at build time: the background list is the image files found then, and every
avatar config file is parsed then (a broken one is a :class:`voxwire.errors.ConfigError`).
Entries that are not regular files, or symbolic links that lead outside their folder, are left
out. Avatar config files are JSON (``.json``) or TOML (``.toml``) documents::

    conf_name = "Mao"                 # the name clients show (default: the file name's stem)
    conf_uid = "mao-001"              # default: a UUID derived from the file name
    persona_prompt = "You are Mao..." # default: ""
    [model_info]                      # passed through as set_model_and_conf.model_info
    name = "mao_pro"
    url = "/live2d/mao_pro/runtime/mao_pro.model3.json"
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import stat
import subprocess
import tomllib
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any

from voxwire.config import (
    _ID,
    ECHO_AGENT,
    AgentEntry,
    AvatarEntry,
    Config,
    JsonValue,
    Org,
    Service,
    Tool,
    VoiceEntry,
    _freeze_json,
    _Loader,
    _Table,
    load_config,
)
from voxwire.errors import ConfigError

__all__ = [
    "AVATAR_CONFIG_SUFFIXES",
    "AVATAR_VOICE",
    "BACKGROUND_SUFFIXES",
    "NONE_VOICE",
    "AvatarConfig",
    "Registry",
    "espeak_voices",
    "safe_file_name",
]

log = logging.getLogger("voxwire.registry")

#: rtguide's special voice ``none``: text only, no audio.
NONE_VOICE = VoiceEntry(
    id="none", vendor="system", description="No voice: text only", output_format="none"
)
#: rtguide's special voice ``avatar``: the avatar speaks (no audio from voxwire).
AVATAR_VOICE = VoiceEntry(
    id="avatar",
    vendor="heygen",
    description="The avatar speaks (no audio frames from the server)",
    output_format="special",
)

#: What counts as a background image (compared in lower case).
BACKGROUND_SUFFIXES = (".jpg", ".jpeg", ".png", ".gif", ".webp", ".avif")
#: The formats of avatar config files.
AVATAR_CONFIG_SUFFIXES = (".json", ".toml")
#: The largest avatar config file read.
MAX_AVATAR_CONFIG_BYTES = 1 << 20
#: The most folder entries looked at (a folder with more is cut there, with a warning).
MAX_FOLDER_ENTRIES = 10_000
#: How long ``espeak-ng --voices`` may take.
ESPEAK_TIMEOUT_S = 10.0

_UID_NAMESPACE = uuid.UUID("5b0e4a3c-2f7e-4b43-9d7e-7f1b2a9c6d11")


def safe_file_name(name: str) -> bool:
    r"""Whether ``name`` is a plain file name: no folder part, no way out of its folder.

    Refused: empty names, ``.`` and ``..``, names with ``/``, ``\``, ``..``, a NUL or other
    control characters, names starting with ``~`` or a drive letter, names longer than 255.
    """
    if not name or len(name) > 255 or name in (".", ".."):
        return False
    if "/" in name or "\\" in name or ".." in name or name.startswith("~"):
        return False
    if any(ord(c) < 32 or ord(c) == 127 for c in name):
        return False
    return not (len(name) >= 2 and name[1] == ":")  # C:x on Windows


@dataclass(frozen=True)
class AvatarConfig:
    """A chatstream avatar config file: what ``switch_avatar_config`` switches to."""

    #: The file name, as clients send it back.
    file: str
    #: ``character_config.conf_name`` in the upstream server: what clients show.
    name: str
    uid: str
    persona_prompt: str = ""
    #: Passed through as ``set_model_and_conf.model_info`` (frozen; see ``voxwire.config.thaw``).
    model_info: Mapping[str, JsonValue] = field(
        default_factory=lambda: MappingProxyType({}), hash=False
    )


def espeak_voices(
    binary: str = "espeak-ng", *, timeout: float = ESPEAK_TIMEOUT_S
) -> tuple[VoiceEntry, ...]:
    """The voices ``espeak-ng --voices`` lists; none when it is not installed or fails.

    A voice's id is its language code (``en-us``), which ``espeak-ng -v`` takes; when two
    voices share a language the later ones are named by their voice file (``yue-latn-jyutping``).
    The vendor is ``espeak-ng``, the output format ``pcm16`` (22050 Hz).
    """
    path = shutil.which(binary)
    if path is None:
        return ()
    try:
        done = subprocess.run(
            [path, "--voices"],
            capture_output=True,
            timeout=timeout,
            check=False,
            stdin=subprocess.DEVNULL,
        )
    except (OSError, subprocess.TimeoutExpired) as e:
        log.warning("espeak-ng --voices failed (%s): no espeak-ng voices", type(e).__name__)
        return ()
    if done.returncode != 0:
        log.warning("espeak-ng --voices exited with %d: no espeak-ng voices", done.returncode)
        return ()
    return parse_espeak_voices(done.stdout.decode("utf-8", "replace"))


def parse_espeak_voices(text: str) -> tuple[VoiceEntry, ...]:
    """The voices in the output of ``espeak-ng --voices`` (see :func:`espeak_voices`).

    The columns are ``Pty Language Age/Gender VoiceName File [Other Languages]``; voice names
    have no spaces (espeak-ng writes ``_``). Lines that do not fit are skipped.
    """
    voices: dict[str, VoiceEntry] = {}
    for line in text.splitlines()[:MAX_FOLDER_ENTRIES]:
        cols = line.split()
        if len(cols) < 5 or not cols[0].isdigit():
            continue
        language, age_gender, name, file = cols[1], cols[2], cols[3], cols[4]
        if language == "variant":
            continue
        gender = {"M": "male", "F": "female"}.get(age_gender.rpartition("/")[2])
        voice_id = language.lower()
        if voice_id in voices:
            voice_id = file.rpartition("/")[2].lower()
            if voice_id in voices:
                continue
        if not _ID.match(voice_id):
            continue
        voices[voice_id] = VoiceEntry(
            id=voice_id,
            vendor="espeak-ng",
            description=name.replace("_", " "),
            output_format="pcm16",
            language=language,
            gender=gender,
            tts="espeak-ng",
            tts_voice=voice_id,
        )
    return tuple(voices.values())


class Registry:
    """Agents, voices, orgs and services, tools, avatars, backgrounds and avatar configs.

    Built from ``config`` (the embedded default when None). ``espeak`` is the espeak-ng binary
    whose voices are listed (None: list none). Raises :class:`ConfigError` when the config
    names a voice that does not exist, or a chatstream folder holds a broken avatar config.
    Immutable: every method returns tuples, frozen dataclasses or None.
    """

    __slots__ = (
        "_agents",
        "_avatar_configs",
        "_avatars",
        "_backgrounds",
        "_config",
        "_default_agent",
        "_orgs",
        "_tools",
        "_voices",
    )

    _agents: Mapping[str, AgentEntry]
    _avatar_configs: Mapping[str, AvatarConfig]
    _avatars: Mapping[str, AvatarEntry]
    _backgrounds: Mapping[str, Path]
    _config: Config
    _default_agent: AgentEntry
    _orgs: Mapping[str, Org]
    _tools: Mapping[str, Tool]
    _voices: Mapping[str, VoiceEntry]

    def __init__(self, config: Config | None = None, *, espeak: str | None = "espeak-ng") -> None:
        cfg = config if config is not None else Config.default()
        label = None if cfg.path is None else os.fspath(cfg.path)
        set_ = object.__setattr__
        set_(self, "_config", cfg)

        agents = {a.id: a for a in cfg.agents} or {ECHO_AGENT.id: ECHO_AGENT}
        set_(self, "_agents", MappingProxyType(agents))
        default_id = cfg.server.default_agent or next(iter(agents))
        set_(self, "_default_agent", agents[default_id])

        found = espeak_voices(espeak) if espeak is not None else ()
        voices: dict[str, VoiceEntry] = {NONE_VOICE.id: NONE_VOICE, AVATAR_VOICE.id: AVATAR_VOICE}
        for v in (*found, *cfg.voices):
            voices[v.id] = v  # the config's voices override found ones with the same id
        set_(self, "_voices", MappingProxyType(voices))
        for i, a in enumerate(cfg.agents):
            if a.voice is not None and a.voice not in voices:
                raise ConfigError(label, f"agents[{i}] (id {a.id!r}).voice", _no_voice(a.voice))
        for i, av in enumerate(cfg.avatars):
            if av.default_voice is not None and av.default_voice not in voices:
                where = f"avatars[{i}] (id {av.id!r}).default_voice"
                raise ConfigError(label, where, _no_voice(av.default_voice))

        tools: dict[str, Tool] = {t.name: t for t in cfg.tools}
        for a in cfg.agents:
            for t in a.tools:
                if tools.setdefault(t.name, t) != t:
                    raise ConfigError(
                        label,
                        f"agents (id {a.id!r}).tools",
                        f"tool {t.name!r} differs from another tool of the same name",
                    )
        set_(self, "_tools", MappingProxyType(tools))

        orgs = {
            o.id: replace(
                o,
                services=tuple(
                    s if s.agent is not None else replace(s, agent=default_id) for s in o.services
                ),
            )
            for o in cfg.orgs
        }
        set_(self, "_orgs", MappingProxyType(orgs))
        set_(self, "_avatars", MappingProxyType({a.id: a for a in cfg.avatars}))

        chat = cfg.chatstream
        backgrounds: dict[str, Path] = {}
        if chat.backgrounds_dir is not None:
            for name, path in _files(chat.backgrounds_dir, label, "chatstream.backgrounds_dir"):
                if name.lower().endswith(BACKGROUND_SUFFIXES):
                    backgrounds[name] = path
        set_(self, "_backgrounds", MappingProxyType(backgrounds))
        configs: dict[str, AvatarConfig] = {}
        if chat.avatar_configs_dir is not None:
            where = "chatstream.avatar_configs_dir"
            for name, path in _files(chat.avatar_configs_dir, label, where):
                if name.lower().endswith(AVATAR_CONFIG_SUFFIXES):
                    configs[name] = _read_avatar_config(name, path)
        set_(self, "_avatar_configs", MappingProxyType(configs))

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("a Registry is immutable: build a new one")

    def __delattr__(self, name: str) -> None:
        raise AttributeError("a Registry is immutable: build a new one")

    @classmethod
    def load(
        cls, path: str | os.PathLike[str] | None = None, *, espeak: str | None = "espeak-ng"
    ) -> Registry:
        """The registry of the config file at ``path`` (the embedded default when None)."""
        return cls(None if path is None else load_config(path), espeak=espeak)

    @property
    def config(self) -> Config:
        """The configuration the registry was built from."""
        return self._config

    # -- agents --

    def agents(self) -> tuple[AgentEntry, ...]:
        """Every agent, in config order."""
        return tuple(self._agents.values())

    def agent(self, agent_id: str) -> AgentEntry | None:
        """The agent with this id (rtguide's key, atoms' agent_id), or None."""
        return self._agents.get(agent_id)

    def default_agent(self) -> AgentEntry:
        """The agent of sessions that name none (``[server] default_agent``, else the first)."""
        return self._default_agent

    # -- voices --

    def voices(self) -> tuple[VoiceEntry, ...]:
        """``none``, ``avatar``, the espeak-ng voices found, then the config's own voices."""
        return tuple(self._voices.values())

    def voice(self, voice_id: str) -> VoiceEntry | None:
        """The voice with this id, or None."""
        return self._voices.get(voice_id)

    def default_voice(self) -> VoiceEntry:
        """The voice of agents that name none: espeak-ng's ``en-us`` when found, else ``none``."""
        return self._voices.get("en-us") or NONE_VOICE

    def voice_of(self, agent: AgentEntry) -> VoiceEntry:
        """The voice ``agent`` speaks with."""
        if agent.voice is not None:
            return self._voices[agent.voice]
        return self.default_voice()

    # -- orgs and services --

    @property
    def open_orgs(self) -> bool:
        """True when the config lists no orgs: every org and service id is accepted."""
        return not self._orgs

    def orgs(self) -> tuple[Org, ...]:
        """The configured orgs (empty when :attr:`open_orgs`); services name their agent."""
        return tuple(self._orgs.values())

    def org(self, org_id: str) -> Org | None:
        """The configured org with this id, or None (also None with :attr:`open_orgs`)."""
        return self._orgs.get(org_id)

    def service(self, org_id: str, service_id: str) -> Service | None:
        """The service ``service_id`` of org ``org_id``, its ``agent`` filled in; or None.

        With :attr:`open_orgs` every org has every service, each running the default agent
        for any version set.
        """
        if self.open_orgs:
            return Service(id=service_id, name=service_id, agent=self._default_agent.id)
        org = self.org(org_id)
        return None if org is None else org.service(service_id)

    # -- tools --

    def tools(self) -> tuple[Tool, ...]:
        """The tool catalog: ``[[tools]]``, then the agents' inline tools, by first appearance."""
        return tuple(self._tools.values())

    def tool(self, name: str) -> Tool | None:
        """The tool with this name, or None."""
        return self._tools.get(name)

    # -- avatars --

    def avatars(self) -> tuple[AvatarEntry, ...]:
        """The configured avatars (``[[avatars]]``)."""
        return tuple(self._avatars.values())

    def avatar(self, avatar_id: str) -> AvatarEntry | None:
        """The avatar with this id, or None."""
        return self._avatars.get(avatar_id)

    # -- chatstream folders --

    def backgrounds(self) -> tuple[str, ...]:
        """The background image file names, sorted (chatstream's ``background_files``)."""
        return tuple(self._backgrounds)

    def background_path(self, name: str) -> Path | None:
        """The file of background ``name`` (resolved at build time), to serve it; or None."""
        return self._backgrounds.get(name) if safe_file_name(name) else None

    def avatar_configs(self) -> tuple[AvatarConfig, ...]:
        """The avatar config files, sorted by file name (chatstream's ``avatar_config_files``)."""
        return tuple(self._avatar_configs.values())

    def avatar_config(self, file: str) -> AvatarConfig | None:
        """The avatar config of file name ``file``; None for names not listed or not plain.

        Only a plain file name of the folder is looked up (see :func:`safe_file_name`):
        ``../x``, absolute paths and the like are refused without touching the disk.
        """
        if not safe_file_name(file):
            return None
        return self._avatar_configs.get(file)


def _no_voice(voice_id: str) -> str:
    return (
        f"unknown voice {voice_id!r} (expected a [[voices]] id, 'none', 'avatar', or an "
        "espeak-ng voice found on this machine)"
    )


def _files(folder: Path, label: str | None, where: str) -> Iterator[tuple[str, Path]]:
    """The regular files of ``folder`` (symbolic links only when they stay inside), sorted."""
    try:
        root = folder.resolve(strict=True)
        with os.scandir(root) as it:
            entries = []
            for k, entry in enumerate(it):
                if k >= MAX_FOLDER_ENTRIES:
                    log.warning("%s: more than %d entries; the rest are ignored", folder, k)
                    break
                entries.append(entry.name)
    except OSError as e:
        raise ConfigError(label, where, f"cannot list the folder ({e.strerror})") from None
    for name in sorted(entries):
        if not safe_file_name(name) or name.startswith("."):
            continue
        path = root / name
        try:
            real = path.resolve(strict=True)
            mode = real.stat().st_mode
        except (OSError, RuntimeError):  # a dangling or looping link
            continue
        if real.parent != root:
            log.warning("%s: %s leads outside the folder; left out", folder, name)
            continue
        if stat.S_ISREG(mode):
            yield name, real


def _read_avatar_config(name: str, path: Path) -> AvatarConfig:
    label = os.fspath(path)
    try:
        with open(path, "rb") as f:
            raw = f.read(MAX_AVATAR_CONFIG_BYTES + 1)
    except OSError as e:
        raise ConfigError(label, "", f"cannot read the file ({e.strerror})") from None
    if len(raw) > MAX_AVATAR_CONFIG_BYTES:
        raise ConfigError(label, "", f"larger than {MAX_AVATAR_CONFIG_BYTES} bytes")
    data: Any
    try:
        text = raw.decode("utf-8")
        data = tomllib.loads(text) if name.lower().endswith(".toml") else json.loads(text)
    except (UnicodeDecodeError, tomllib.TOMLDecodeError, json.JSONDecodeError) as e:
        kind = "TOML" if name.lower().endswith(".toml") else "JSON"
        raise ConfigError(label, "", f"not valid {kind} ({e})") from None
    t = _Table(_Loader(label, path.parent), "", data)
    conf_name: str = t.text("conf_name", Path(name).stem)
    uid = t.text("conf_uid", None) or str(uuid.uuid5(_UID_NAMESPACE, name))
    persona: str = t.text("persona_prompt", "")
    info = t.get("model_info", lambda v: isinstance(v, dict), "a table (the model's info)", {})
    frozen = _freeze_json(t.loader, "model_info", info)
    assert isinstance(frozen, Mapping)
    t.done(renamed={"name": "conf_name", "uid": "conf_uid", "live2d_model_info": "model_info"})
    return AvatarConfig(
        file=name, name=conf_name, uid=uid, persona_prompt=persona, model_info=frozen
    )
