"""voxwire.config: voxwire.toml into frozen dataclasses, one-line errors, safe templates."""

from __future__ import annotations

import dataclasses
import pickle
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from voxwire.cli import build_parser
from voxwire.config import (
    ECHO_AGENT,
    AgentEntry,
    AvatarEntry,
    ChatstreamSettings,
    Config,
    Org,
    ServerSettings,
    Service,
    Tool,
    VoiceEntry,
    load_config,
    render,
    thaw,
)
from voxwire.errors import ConfigError, VoxwireError
from voxwire.gate import ServerLimits
from voxwire.session import Limits

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "voxwire.toml"

FULL = """
[server]
host = "0.0.0.0"
port = 9100
api_keys = ["k-0123456789abcdef", "k-fedcba9876543210"]
store = "redis://127.0.0.1:6390/2"
default_agent = "b"
vad = "webrtc"
idle_timeout = 30
max_message_bytes = 65536
max_send_queue = 64
max_buffer_ms = 60000
max_items = 100
responses_per_minute = 120
max_delta_ms = 100
asr = "none"
driver = "asgi"
model = "voxwire-test"

[[tools]]
name = "get_weather"
description = "Weather of a city."
parameters = { type = "object", properties = { city = { type = "string" } }, required = ["city"] }

[[voices]]
id = "robot"
vendor = "acme"
description = "A robot"
output_format = "pcm16"
language = "en"
gender = "neutral"
tts = "acme.tts:Robot"
tts_voice = "r2"

[[agents]]
id = "a"
name = "Agent A"
description = "First"
category = ["x", "y"]
voice = "robot"
greeting = "Hi {name}"
instructions = "Help {name} with {topic}."
implementation = "my.module:make_agent"
model = "gpt-test"
tools = ["get_weather", { name = "inline_tool", description = "d" }]
[agents.variables]
topic = "billing"
n = 3
ok = true
ratio = 0.5

[[agents]]
id = "b"

[[orgs]]
id = "org1"
name = "Org One"
[[orgs.services]]
id = "svc1"
name = "Service 1"
description = "desc"
agent = "a"
version_sets = { release = "a", edge = "b" }
[[orgs.services]]
id = "svc2"

[[avatars]]
id = "av1"
name = "Avatar One"
default_voice = "robot"
preview = "https://example.com/p.png"
is_public = false
status = "INACTIVE"
created_at = 1700000000

[chatstream]
backgrounds_dir = "bg"
avatar_configs_dir = "av"
"""


def write(tmp_path: Path, text: str, name: str = "voxwire.toml") -> Path:
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


def test_full_config_loads(tmp_path: Path) -> None:
    (tmp_path / "bg").mkdir()
    (tmp_path / "av").mkdir()
    cfg = load_config(write(tmp_path, FULL))
    s = cfg.server
    assert (s.host, s.port, s.vad, s.asr, s.driver, s.model) == (
        "0.0.0.0",
        9100,
        "webrtc",
        "none",
        "asgi",
        "voxwire-test",
    )
    assert s.api_keys == ("k-0123456789abcdef", "k-fedcba9876543210")
    assert s.store == "redis://127.0.0.1:6390/2"
    assert s.default_agent == "b"
    assert s.idle_timeout == 30.0 and isinstance(s.idle_timeout, float)
    assert (s.max_message_bytes, s.max_send_queue, s.max_buffer_ms) == (65536, 64, 60000)
    assert (s.max_items, s.responses_per_minute, s.max_delta_ms) == (100, 120, 100)

    a, b = cfg.agents
    assert (a.id, a.key, a.name, a.description, a.category) == (
        "a",
        "a",
        "Agent A",
        "First",
        ("x", "y"),
    )
    assert (a.voice, a.greeting, a.implementation, a.model) == (
        "robot",
        "Hi {name}",
        "my.module:make_agent",
        "gpt-test",
    )
    assert dict(a.variables) == {"topic": "billing", "n": 3, "ok": True, "ratio": 0.5}
    assert [t.name for t in a.tools] == ["get_weather", "inline_tool"]
    assert a.tools[0] is cfg.tools[0]
    assert a.tools[0].schema() == {
        "type": "function",
        "name": "get_weather",
        "description": "Weather of a city.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    }
    assert a.tools[1].schema()["parameters"] == {"type": "object", "properties": {}}
    # Defaults of an agent with only an id.
    assert (b.name, b.description, b.category, b.voice, b.greeting) == ("b", "", (), None, None)
    assert (b.instructions, b.implementation, b.tools, dict(b.variables)) == ("", "echo", (), {})

    (v,) = cfg.voices
    assert (v.id, v.vendor, v.description, v.output_format) == ("robot", "acme", "A robot", "pcm16")
    assert (v.language, v.gender, v.tts, v.tts_voice) == ("en", "neutral", "acme.tts:Robot", "r2")

    (org,) = cfg.orgs
    assert (org.id, org.name) == ("org1", "Org One")
    svc1, svc2 = org.services
    assert (svc1.name, svc1.description, svc1.agent) == ("Service 1", "desc", "a")
    assert svc1.agent_for("release") == "a" and svc1.agent_for("edge") == "b"
    assert svc1.agent_for("custom") is None
    assert svc2.agent is None and svc2.name == "svc2" and not svc2.version_sets
    assert org.service("svc2") is svc2 and org.service("nope") is None

    (av,) = cfg.avatars
    assert (av.id, av.name, av.default_voice, av.preview) == (
        "av1",
        "Avatar One",
        "robot",
        "https://example.com/p.png",
    )
    assert (av.is_public, av.status, av.created_at) == (False, "INACTIVE", 1700000000)
    # Relative paths are taken from the config file's folder, not the cwd.
    assert cfg.chatstream.backgrounds_dir == tmp_path.resolve() / "bg"
    assert cfg.chatstream.avatar_configs_dir == tmp_path.resolve() / "av"
    assert cfg.path == tmp_path / "voxwire.toml"


def test_example_config_loads() -> None:
    cfg = load_config(EXAMPLE)
    assert [a.id for a in cfg.agents] == ["concierge", "echo"]
    assert cfg.server.default_agent == "concierge"
    concierge = cfg.agents[0]
    assert concierge.render_greeting({"user_name": "Ann"}) == (
        "Hello Ann, this is Example Corp. How can I help?"
    )
    assert [t.name for t in concierge.tools] == ["lookup_order", "transfer_call"]
    assert cfg.chatstream.backgrounds_dir == EXAMPLE.parent / "chatstream" / "backgrounds"


def test_empty_file_is_the_default(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, ""))
    assert cfg.agents == (ECHO_AGENT,)
    assert cfg.server == ServerSettings()
    assert cfg.orgs == () and cfg.voices == () and cfg.tools == () and cfg.avatars == ()
    assert dataclasses.replace(cfg, path=None) == Config.default()


def test_defaults_match_the_command_line_and_the_session_limits() -> None:
    s = ServerSettings()
    args = build_parser().parse_args(["serve"])
    assert (s.host, s.port, s.vad, s.idle_timeout) == (
        args.host,
        args.port,
        args.vad,
        args.idle_timeout,
    )
    assert (s.max_message_bytes, s.asr, s.driver) == (args.max_message_bytes, args.asr, args.driver)
    lim = Limits()
    assert (s.idle_timeout, s.max_buffer_ms, s.max_items) == (
        lim.idle_timeout_s,
        lim.max_buffer_ms,
        lim.max_items,
    )
    assert (s.responses_per_minute, s.max_delta_ms) == (lim.responses_per_minute, lim.max_delta_ms)
    assert (
        s.max_conversation_bytes,
        s.max_response_events,
        s.max_response_bytes,
        s.messages_per_minute,
    ) == (
        lim.max_conversation_bytes,
        lim.max_response_events,
        lim.max_response_bytes,
        lim.messages_per_minute,
    )
    sl = ServerLimits()
    assert (s.write_timeout, s.handshake_timeout) == (args.write_timeout, sl.handshake_timeout_s)
    assert (s.max_connections, s.max_connections_per_peer, s.max_failed_auth) == (
        sl.max_connections,
        sl.max_connections_per_peer,
        sl.failed_auth_per_peer_per_minute,
    )
    assert (s.max_connections, s.handshake_timeout) == (
        args.max_connections,
        args.handshake_timeout,
    )


BAD = [
    # (toml, expected "where", expected words of the problem)
    ("colour = 1", "colour", "unknown key"),
    ("[server]\nprot = 80", "server.prot", "unknown key"),
    ("[server]\nagent = 'x'", "server.agent", "did you mean 'default_agent'"),
    ("[[agent]]\nid = 'x'", "agent", "did you mean 'agents'"),
    (
        "[[agents]]\nid = 'a'\nprompt = 'x'",
        "agents[0] (id 'a').prompt",
        "did you mean 'instructions'",
    ),
    ("[server]\nport = '80'", "server.port", "expected an integer from 0 to 65535, got a string"),
    ("[server]\nport = true", "server.port", "got a boolean"),
    ("[server]\nport = 70000", "server.port", "got 70000"),
    ("[server]\nidle_timeout = 'x'", "server.idle_timeout", "expected a number"),
    ("[server]\nidle_timeout = nan", "server.idle_timeout", "got nan"),
    (
        "[server]\nvad = 'magic'",
        "server.vad",
        "expected one of 'spectral', 'silero', 'webrtc', 'energy'",
    ),
    ("[server]\napi_keys = 'k'", "server.api_keys", "expected an array of API keys"),
    ("server = 3", "server", "expected a table, got an integer"),
    ("agents = 3", "agents", "expected an array of tables"),
    ("[[agents]]\nname = 'x'", "agents[0].id", "missing"),
    ("[[agents]]\nid = '../x'", "agents[0].id", "expected an agent id"),
    ("[[agents]]\nid = 'a'\ncategory = 'x'", "agents[0] (id 'a').category", "array of strings"),
    ("[[agents]]\nid = 'a'\n[[agents]]\nid = 'a'", "agents[1].id", "duplicate agent id 'a'"),
    ("[[agents]]\nid = 'a'\nimplementation = 'os.system'", "implementation", "module:attribute"),
    ("[[agents]]\nid = 'a'\nimplementation = 'a:b:c'", "implementation", "module:attribute"),
    (
        "[[agents]]\nid = 'a'\ntools = ['nope']",
        "agents[0] (id 'a').tools[0]",
        "unknown tool 'nope'",
    ),
    ("[[agents]]\nid = 'a'\nvariables = { x = [1] }", "variables.x", "a string, number or boolean"),
    ("[[agents]]\nid = 'a'\nvariables = { 'a b' = 1 }", "variables.a b", "variable name"),
    ("[[tools]]\nname = 'bad name'", "tools[0].name", "expected 1-64 letters"),
    ("[[tools]]\nname = 't'\nparameters = { type = 'string' }", "parameters.type", '"object"'),
    (
        "[[tools]]\nname = 't'\nparameters = { required = ['x'] }",
        "tools[0].parameters.required",
        "not in properties",
    ),
    (
        "[[tools]]\nname = 't'\nparameters = { properties = { d = { default = 1979-05-27 } } }",
        "tools[0].parameters.properties.d.default",
        "expected a JSON value",
    ),
    ("[[tools]]\nname = 't'\n[[tools]]\nname = 't'", "tools[1].name", "duplicate tool name"),
    ("[[tools]]\nname = 't'\nschema = {}", "tools[0].schema", "unknown key"),
    ("[[voices]]\nid = 'none'", "voices", "reserved"),
    ("[[voices]]\nid = 'v'\n[[voices]]\nid = 'v'", "voices[1].id", "duplicate voice id"),
    ("[[voices]]\nid = 'v'\noutput_format = 'mp3'", "output_format", "one of 'pcm16'"),
    ("[server]\ndefault_agent = 'ghost'", "server.default_agent", "unknown agent 'ghost'"),
    (
        "[[orgs]]\nid = 'o'\n[[orgs.services]]\nid = 's'\nagent = 'ghost'",
        "orgs[0] (id 'o').services[0] (id 's').agent",
        "unknown agent 'ghost'",
    ),
    (
        "[[orgs]]\nid = 'o'\n[[orgs.services]]\nid = 's'\nversion_sets = { edge = 'ghost' }",
        "version_sets.edge",
        "unknown agent",
    ),
    (
        "[[orgs]]\nid = 'o'\n[[orgs.services]]\nid = 's'\n[[orgs.services]]\nid = 's'",
        "services[1].id",
        "duplicate service id",
    ),
    ("[[orgs]]\nid = 'o'\n[[orgs]]\nid = 'o'", "orgs[1].id", "duplicate org id"),
    ("[[avatars]]\nid = 'a'\nis_public = 'yes'", "is_public", "expected a boolean"),
    ("[chatstream]\nbackgrounds_dir = 'missing'", "chatstream.backgrounds_dir", "existing folder"),
    ("[chatstream]\nbackground_dir = 'x'", "chatstream.background_dir", "unknown key"),
    ("[server\nport = 1", "", "not valid TOML"),
]


@pytest.mark.parametrize(("text", "where", "problem"), BAD)
def test_bad_config_gives_one_line_error(
    tmp_path: Path, text: str, where: str, problem: str
) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    msg = str(info.value)
    assert "\n" not in msg
    assert msg.startswith(f"{path}: ")
    assert where in msg
    assert problem in msg
    assert info.value.path == str(path)


def test_missing_and_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"missing\.toml: cannot read the file"):
        load_config(tmp_path / "missing.toml")
    with pytest.raises(ConfigError, match="cannot read the file"):
        load_config(tmp_path)  # a folder
    p = tmp_path / "latin1.toml"
    p.write_bytes(b"# caf\xe9\n")
    with pytest.raises(ConfigError, match=r"not UTF-8 text \(byte 5\)"):
        load_config(p)


def test_secrets_are_not_in_messages(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, '[server]\napi_keys = ["hunter2 secret"]'))
    assert "hunter2" not in str(info.value) and "server.api_keys[0]" in str(info.value)
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, '[server]\nstore = "postgres://u:pa55word@h/db"'))
    assert "pa55word" not in str(info.value) and "server.store" in str(info.value)
    s = load_config(
        write(tmp_path, '[server]\napi_keys = ["k-supersecret"]\nstore = "redis://:pw9@h"')
    )
    assert "supersecret" not in repr(s) and "pw9" not in repr(s)


def test_config_error_is_typed_and_pickles() -> None:
    e = ConfigError("a.toml", "server.port", "expected an integer")
    assert isinstance(e, VoxwireError) and isinstance(e, ValueError)
    assert str(e) == "a.toml: server.port: expected an integer"
    back = pickle.loads(pickle.dumps(e))
    assert (str(back), back.path, back.where) == (str(e), "a.toml", "server.port")
    assert str(ConfigError(None, "", "not valid\nTOML")) == "<config>: not valid TOML"


def test_parse_without_a_file() -> None:
    cfg = Config.parse('[[agents]]\nid = "x"')
    assert cfg.path is None and cfg.agents[0].id == "x"
    with pytest.raises(ConfigError, match=r"^<config>: agents\[0\]\.id: missing"):
        Config.parse("[[agents]]\nname = 'x'")


def test_loaded_values_are_immutable(tmp_path: Path) -> None:
    cfg = load_config(EXAMPLE)
    agent = cfg.agents[0]
    with pytest.raises(dataclasses.FrozenInstanceError):
        agent.name = "x"  # type: ignore[misc]
    with pytest.raises(TypeError):
        agent.variables["company"] = "x"  # type: ignore[index]
    params = agent.tools[0].parameters
    with pytest.raises(TypeError):
        params["type"] = "x"  # type: ignore[index]
    assert isinstance(params["required"], tuple)
    # schema() is a fresh plain copy each time: changing it changes nothing.
    sch = agent.tools[0].schema()
    sch["parameters"]["required"].append("x")
    assert agent.tools[0].schema()["parameters"]["required"] == ["order_id"]


def test_thaw() -> None:
    tool = Tool(name="t")
    assert thaw(tool.parameters) == {"type": "object", "properties": {}}
    assert thaw((1, {"a": (2,)})) == [1, {"a": [2]}]


# --- templates ---


def test_render_replaces_known_names_only() -> None:
    t = "Hi {name}, you owe {amount} ({paid}); ref {ref} {missing}"
    out = render(t, {"name": "Ann", "amount": 12.5, "paid": False, "ref": 7})
    assert out == "Hi Ann, you owe 12.5 (false); ref 7 {missing}"


@pytest.mark.parametrize(
    "template",
    [
        "{0.__class__}",
        "{0}",
        "{}",
        "{x.y}",
        "{x.__class__.__mro__}",
        "{x[0]}",
        "{x!r}",
        "{x:>10}",
        "{x",
        "x}",
        "{{x}",
        "{ x }",
        "{__import__('os').system('true')}",
    ],
)
def test_render_leaves_hostile_placeholders_literal(template: str) -> None:
    assert render(template, {}) == template
    # Even with x given, attribute/item/conversion/format forms are not placeholders.
    out = render(template, {"x": "X"})
    assert "__class__" not in out or "__class__" in template
    assert out == template.replace("{x}", "X")


class Sneaky(str):
    def __str__(self) -> str:
        raise AssertionError("__str__ of a foreign object ran")

    def __format__(self, spec: str) -> str:
        raise AssertionError("__format__ of a foreign object ran")


def test_render_never_runs_foreign_code() -> None:
    class Obj:
        def __str__(self) -> str:
            raise AssertionError("ran")

    out = render("{a} {b} {c} {d}", {"a": Obj(), "b": Sneaky("s"), "c": [1], "d": None})
    assert out == "{a} {b} {c} {d}"


def test_render_is_one_pass() -> None:
    assert render("{a}", {"a": "{b}", "b": "no"}) == "{b}"
    assert render("{a}{a}", {"a": "{a}"}) == "{a}{a}"


def test_agent_variables_defaults_and_overrides(tmp_path: Path) -> None:
    cfg = load_config(EXAMPLE)
    concierge = cfg.agents[0]
    text = concierge.render_instructions({"current_date": "2026-01-02"})
    assert text.startswith("You are the concierge of Example Corp. The caller is there.")
    assert "Today is 2026-01-02." in text
    assert "{current_date}" in concierge.render_instructions()
    assert (
        concierge.render_greeting({"company": "ACME"})
        == "Hello there, this is ACME. How can I help?"
    )
    assert cfg.agents[1].render_greeting({"x": 1}) is None


@pytest.mark.slow
@given(st.text(max_size=200))
def test_render_without_variables_is_identity(text: str) -> None:
    assert render(text, {}) == text


@pytest.mark.slow
@given(
    st.text(max_size=100),
    st.dictionaries(
        st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,5}", fullmatch=True),
        st.one_of(st.text(max_size=10), st.integers(), st.booleans(), st.floats()),
        max_size=5,
    ),
)
def test_render_never_raises(text: str, variables: dict[str, object]) -> None:
    assert isinstance(render(text, variables), str)


# --- the reference stays in step with the code ---

DOCS = Path(__file__).resolve().parents[2] / "docs" / "config.md"


def test_docs_example_is_the_example_file() -> None:
    text = DOCS.read_text(encoding="utf-8")
    block = text.split("```toml\n", 1)[1].split("```", 1)[0]
    assert Config.parse(block, path=EXAMPLE) == load_config(EXAMPLE)


def test_docs_name_every_key() -> None:
    text = DOCS.read_text(encoding="utf-8")
    classes = (
        ServerSettings,
        AgentEntry,
        Tool,
        VoiceEntry,
        Org,
        Service,
        AvatarEntry,
        ChatstreamSettings,
    )
    for cls in classes:
        for f in dataclasses.fields(cls):
            if f.name == "path":
                continue
            assert f"| `{f.name}` |" in text, f"{cls.__name__}.{f.name} is not in docs/config.md"


def test_loaded_values_are_hashable() -> None:
    cfg = load_config(EXAMPLE)
    assert len({*cfg.agents, *cfg.tools, *cfg.voices, *cfg.orgs, *cfg.avatars}) == 6
