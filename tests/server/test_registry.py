"""voxwire.registry: what every dialect's "list" command answers from."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from voxwire.config import load_config, thaw
from voxwire.errors import ConfigError
from voxwire.registry import (
    AVATAR_VOICE,
    NONE_VOICE,
    Registry,
    espeak_voices,
    parse_espeak_voices,
    safe_file_name,
)

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "voxwire.toml"
ESPEAK = shutil.which("espeak-ng")
needs_espeak = pytest.mark.skipif(ESPEAK is None, reason="espeak-ng is not installed")


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "voxwire.toml"
    p.write_text(text, encoding="utf-8")
    return p


# --- defaults ---


def test_defaults_without_config() -> None:
    r = Registry(espeak=None)
    (echo,) = r.agents()
    assert (echo.id, echo.key, echo.name, echo.implementation) == ("echo", "echo", "Echo", "echo")
    assert r.default_agent() is echo and r.agent("echo") is echo
    assert r.agent("nope") is None
    assert r.voices() == (NONE_VOICE, AVATAR_VOICE)
    assert r.voice("none") == NONE_VOICE and r.voice("en-us") is None
    assert r.default_voice() == NONE_VOICE and r.voice_of(echo) == NONE_VOICE
    # Every org has every service, and each runs the echo agent whatever the version set.
    assert r.open_orgs and r.orgs() == ()
    svc = r.service("any-org", "65f1c0de0000000000000009")
    assert svc is not None and svc.id == "65f1c0de0000000000000009"
    assert svc.agent_for("release") == "echo" and svc.agent_for("edge") == "echo"
    assert r.tools() == () and r.avatars() == ()
    assert r.backgrounds() == () and r.avatar_configs() == ()
    assert r.avatar_config("x.json") is None and r.background_path("x.png") is None


def test_registry_is_immutable() -> None:
    r = Registry(espeak=None)
    with pytest.raises(AttributeError):
        r._agents = {}
    with pytest.raises(AttributeError):
        r.anything = 1
    with pytest.raises(AttributeError):
        del r._config
    with pytest.raises(TypeError):
        r._agents["x"] = r.default_agent()  # type: ignore[index]
    assert isinstance(r.agents(), tuple) and isinstance(r.voices(), tuple)


# --- espeak-ng voices ---


@needs_espeak
def test_espeak_voices_found_on_this_machine() -> None:
    assert ESPEAK is not None
    found = espeak_voices(ESPEAK)
    ids = [v.id for v in found]
    assert "en-us" in ids and len(ids) == len(set(ids))
    en = next(v for v in found if v.id == "en-us")
    assert (en.vendor, en.output_format, en.tts, en.tts_voice) == (
        "espeak-ng",
        "pcm16",
        "espeak-ng",
        "en-us",
    )
    assert en.description == "English (America)" and en.language == "en-us"
    r = Registry()
    assert r.voices()[:2] == (NONE_VOICE, AVATAR_VOICE)
    assert r.voices()[2:] == found
    assert r.default_voice().id == "en-us"
    # The voice argument each entry carries is one espeak-ng accepts (it says so otherwise).
    for voice in (found[0], en, found[-1]):
        assert voice.tts_voice is not None
        done = subprocess.run(
            [ESPEAK, "-v", voice.tts_voice, "--stdout", "hi"],
            capture_output=True,
            timeout=30,
            check=False,
        )
        assert done.returncode == 0 and done.stdout[:4] == b"RIFF", voice
        assert b"does not exist" not in done.stderr


@needs_espeak
def test_config_voice_overrides_a_found_voice(tmp_path: Path) -> None:
    p = write(
        tmp_path,
        '[[voices]]\nid = "en-us"\nvendor = "me"\ndescription = "mine"\n'
        '[[agents]]\nid = "a"\nvoice = "en-us"',
    )
    r = Registry.load(p)
    v = r.voice("en-us")
    assert v is not None and (v.vendor, v.description) == ("me", "mine")
    assert [x.id for x in r.voices()].count("en-us") == 1
    assert r.voice_of(r.default_agent()) == v


def test_no_espeak_means_only_the_special_voices(tmp_path: Path) -> None:
    assert espeak_voices(str(tmp_path / "no-such-espeak")) == ()
    r = Registry(espeak=str(tmp_path / "no-such-espeak"))
    assert [v.id for v in r.voices()] == ["none", "avatar"]


def _script(tmp_path: Path, body: str) -> str:
    p = tmp_path / "fake-espeak"
    p.write_text(f"#!/bin/sh\n{body}\n")
    p.chmod(0o755)
    return str(p)


def test_espeak_that_fails_gives_no_voices(tmp_path: Path) -> None:
    assert espeak_voices(_script(tmp_path, "echo broken >&2; exit 3")) == ()


@pytest.mark.slow
@pytest.mark.timeout(30)
def test_espeak_that_hangs_is_cut_by_the_timeout(tmp_path: Path) -> None:
    assert espeak_voices(_script(tmp_path, "exec sleep 60"), timeout=0.5) == ()


def test_parse_espeak_voices() -> None:
    text = (
        "Pty Language       Age/Gender VoiceName          File                 Other Languages\n"
        " 5  af              --/M      Afrikaans          gmw/af\n"
        " 2  en-us           --/F      English_(America)  gmw/en-US            (en 3)\n"
        " 5  yue             --/M      Chinese_(Cantonese) sit/yue              (zh-yue 5)(zh 8)\n"
        " 5  yue             --/M      Chinese_(Cantonese,_latin_as_Jyutping) sit/yue-Latn-jyutping"
        " (zh-yue 5)\n"
        " 5  variant         --/M      Storm              !v/Storm             (en-us 5)\n"
        "garbage line\n"
    )
    voices = parse_espeak_voices(text)
    assert [v.id for v in voices] == ["af", "en-us", "yue", "yue-latn-jyutping"]
    assert voices[1].gender == "female" and voices[0].gender == "male"
    assert voices[3].description == "Chinese (Cantonese, latin as Jyutping)"
    assert voices[3].tts_voice == "yue-latn-jyutping" and voices[3].language == "yue"


# --- references to voices ---


def test_agent_referencing_an_unknown_voice(tmp_path: Path) -> None:
    p = write(tmp_path, '[[agents]]\nid = "a"\nvoice = "klingon-9"')
    cfg = load_config(p)  # the file alone is fine: voices depend on the machine
    with pytest.raises(ConfigError) as info:
        Registry(cfg, espeak=None)
    msg = str(info.value)
    assert "\n" not in msg
    assert msg.startswith(f"{p}: agents[0] (id 'a').voice: unknown voice 'klingon-9'")


def test_avatar_referencing_an_unknown_voice(tmp_path: Path) -> None:
    p = write(tmp_path, '[[avatars]]\nid = "av"\ndefault_voice = "ghost"')
    with pytest.raises(
        ConfigError, match=r"avatars\[0\] \(id 'av'\)\.default_voice: unknown voice"
    ):
        Registry.load(p, espeak=None)


def test_special_voices_can_be_referenced(tmp_path: Path) -> None:
    p = write(
        tmp_path, '[[agents]]\nid = "a"\nvoice = "avatar"\n[[agents]]\nid = "b"\nvoice = "none"'
    )
    r = Registry.load(p, espeak=None)
    a, b = r.agents()
    assert r.voice_of(a) == AVATAR_VOICE and r.voice_of(b) == NONE_VOICE


# --- the example, orgs, tools, avatars ---


def test_example_registry() -> None:
    r = Registry.load(EXAMPLE, espeak=None)
    assert [a.id for a in r.agents()] == ["concierge", "echo"]
    assert r.default_agent().id == "concierge"
    narrator = r.voice("narrator")
    assert narrator is not None and narrator.tts_voice == "en-us+f3"
    assert r.voice_of(r.default_agent()) == narrator
    assert not r.open_orgs
    assert [o.id for o in r.orgs()] == ["example-org"]
    front = r.service("example-org", "65f1c0de0000000000000001")
    assert front is not None and front.agent_for("edge") == "echo"
    assert front.agent_for("release") == "concierge" and front.agent_for("beta") is None
    line = r.service("example-org", "65f1c0de0000000000000002")
    assert line is not None and line.agent == "concierge"  # the default agent, filled in
    assert r.service("other-org", "65f1c0de0000000000000001") is None
    assert r.service("example-org", "65f1c0de00000000000000ff") is None
    assert [t.name for t in r.tools()] == ["lookup_order", "transfer_call"]
    assert r.tool("transfer_call") is not None and r.tool("nope") is None
    (av,) = r.avatars()
    assert r.avatar(av.id) == av and av.default_voice == "narrator"
    assert r.backgrounds() == ("dusk.png", "meadow.png")
    mao = r.avatar_config("mao.json")
    assert mao is not None and (mao.name, mao.uid) == ("Mao", "mao-001")
    assert thaw(mao.model_info)["emotionMap"] == {"neutral": 0, "joy": 3, "sadness": 1}
    shizuku = r.avatar_config("shizuku.toml")
    assert shizuku is not None and shizuku.name == "Shizuku"
    assert thaw(shizuku.model_info)["motions"] == ["idle", "tap_body"]
    # A conf_uid derived from the file name is the same on every load (and every worker).
    assert Registry.load(EXAMPLE, espeak=None).avatar_config("shizuku.toml") == shizuku
    assert [c.file for c in r.avatar_configs()] == ["mao.json", "shizuku.toml"]


def test_inline_tools_join_the_catalog_and_must_agree(tmp_path: Path) -> None:
    same = '{ name = "t", description = "d" }'
    p = write(
        tmp_path, f"[[agents]]\nid = 'a'\ntools = [{same}]\n[[agents]]\nid = 'b'\ntools = [{same}]"
    )
    assert [t.name for t in Registry.load(p, espeak=None).tools()] == ["t"]
    other = '{ name = "t", description = "other" }'
    p = write(
        tmp_path, f"[[agents]]\nid = 'a'\ntools = [{same}]\n[[agents]]\nid = 'b'\ntools = [{other}]"
    )
    with pytest.raises(ConfigError, match="tool 't' differs"):
        Registry.load(p, espeak=None)


def test_default_agent_is_the_first_unless_named(tmp_path: Path) -> None:
    p = write(tmp_path, "[[agents]]\nid = 'x'\n[[agents]]\nid = 'y'")
    assert Registry.load(p, espeak=None).default_agent().id == "x"
    p = write(tmp_path, "[server]\ndefault_agent = 'y'\n[[agents]]\nid = 'x'\n[[agents]]\nid = 'y'")
    r = Registry.load(p, espeak=None)
    assert r.default_agent().id == "y"
    assert r.service("o", "s") is not None and r.service("o", "s").agent == "y"  # type: ignore[union-attr]


# --- chatstream folders ---


@pytest.fixture
def chat(tmp_path: Path) -> Path:
    """A config folder with backgrounds/ and avatars/, and a secret outside both."""
    bg, av = tmp_path / "backgrounds", tmp_path / "avatars"
    bg.mkdir()
    av.mkdir()
    for name in ("b.png", "a.JPG", "c.webp", "notes.txt", ".hidden.png"):
        (bg / name).write_bytes(b"x")
    (bg / "sub.png").mkdir()  # a folder with an image's name
    (av / "one.json").write_text(json.dumps({"conf_name": "One", "model_info": {"k": [1, 2]}}))
    (av / "two.toml").write_text('conf_name = "Two"\nconf_uid = "u2"\n')
    (av / "readme.md").write_text("not a config")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.json").write_text(json.dumps({"conf_name": "SECRET"}))
    (outside / "secret.png").write_bytes(b"secret")
    os.symlink(outside / "secret.json", av / "escape.json")
    os.symlink(outside / "secret.png", bg / "escape.png")
    os.symlink("b.png", bg / "inside.png")  # a link that stays in the folder is fine
    os.symlink(tmp_path / "nowhere.png", bg / "dangling.png")
    write(
        tmp_path,
        '[chatstream]\nbackgrounds_dir = "backgrounds"\navatar_configs_dir = "avatars"\n',
    )
    return tmp_path


def test_backgrounds_are_sorted_images_of_the_folder(chat: Path) -> None:
    r = Registry.load(chat / "voxwire.toml", espeak=None)
    assert r.backgrounds() == ("a.JPG", "b.png", "c.webp", "inside.png")
    b = r.background_path("b.png")
    assert b == (chat / "backgrounds" / "b.png").resolve()
    assert r.background_path("inside.png") == b


def test_avatar_configs_of_the_folder(chat: Path) -> None:
    r = Registry.load(chat / "voxwire.toml", espeak=None)
    assert [(c.file, c.name) for c in r.avatar_configs()] == [
        ("one.json", "One"),
        ("two.toml", "Two"),
    ]
    one = r.avatar_config("one.json")
    assert one is not None and thaw(one.model_info) == {"k": [1, 2]} and one.persona_prompt == ""
    two = r.avatar_config("two.toml")
    assert two is not None and two.uid == "u2" and thaw(two.model_info) == {}


@pytest.mark.parametrize(
    "name",
    [
        "../outside/secret.json",
        "../voxwire.toml",
        "..",
        ".",
        "",
        "escape.json",
        "/etc/passwd",
        "avatars/one.json",
        "..\\outside\\secret.json",
        "one.json\0",
        "one.json/",
        "~/one.json",
        "C:one.json",
        "x" * 300,
    ],
)
def test_avatar_config_names_that_leave_the_folder_are_refused(chat: Path, name: str) -> None:
    r = Registry.load(chat / "voxwire.toml", espeak=None)
    assert r.avatar_config(name) is None
    assert r.avatar_config(str(chat / "avatars" / "one.json")) is None  # absolute, even inside
    assert all(c.name != "SECRET" for c in r.avatar_configs())


@pytest.mark.parametrize(
    "name",
    ["../outside/secret.png", "escape.png", "dangling.png", "sub.png", "notes.txt", ".hidden.png"],
)
def test_background_names_that_leave_the_folder_are_refused(chat: Path, name: str) -> None:
    r = Registry.load(chat / "voxwire.toml", espeak=None)
    assert name not in r.backgrounds()
    assert r.background_path(name) is None
    assert r.background_path(str(chat / "outside" / "secret.png")) is None


def test_safe_file_name() -> None:
    assert safe_file_name("mao.json") and safe_file_name("a b-c_d.v2.toml")
    for bad in ("", ".", "..", "a/b", "a\\b", "..x", "x..json", "a\0", "a\nb", "~x", "C:x"):
        assert not safe_file_name(bad), bad


@pytest.mark.parametrize(
    ("file", "content", "problem"),
    [
        ("bad.json", "{not json", "not valid JSON"),
        ("bad.toml", "conf_name = ", "not valid TOML"),
        ("list.json", "[1, 2]", "expected a table, got an array"),
        ("typo.json", '{"conf_nam": "x"}', "conf_nam: unknown key"),
        ("wrong.json", '{"model_info": "x"}', "model_info: expected a table"),
        ("uid.toml", "conf_uid = 3", "conf_uid: expected a string"),
    ],
)
def test_broken_avatar_config_is_a_config_error(
    tmp_path: Path, file: str, content: str, problem: str
) -> None:
    (tmp_path / "av").mkdir()
    (tmp_path / "av" / file).write_text(content)
    p = write(tmp_path, '[chatstream]\navatar_configs_dir = "av"')
    with pytest.raises(ConfigError) as info:
        Registry.load(p, espeak=None)
    msg = str(info.value)
    assert "\n" not in msg and file in msg and problem in msg


def test_folder_removed_after_the_config_was_read(tmp_path: Path) -> None:
    (tmp_path / "bg").mkdir()
    cfg = load_config(write(tmp_path, '[chatstream]\nbackgrounds_dir = "bg"'))
    (tmp_path / "bg").rmdir()
    with pytest.raises(ConfigError, match=r"chatstream\.backgrounds_dir: cannot list the folder"):
        Registry(cfg, espeak=None)
