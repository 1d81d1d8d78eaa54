"""``voxwire users`` / ``voxwire keys`` run as the operator runs them: a subprocess."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import pytest

import voxwire
from voxwire.auth import Authenticator, JwtKeys
from voxwire.store.sqlite import SQLiteStore

ROOT = Path(__file__).parents[2]

pytestmark = [pytest.mark.timeout(120), pytest.mark.slow]


class Cli:
    def __init__(self, tmp: Path) -> None:
        self.db = tmp / "admin.db"
        self.url = f"sqlite:///{self.db}"
        self.env = {
            **os.environ,
            # The voxwire these tests import: installed, or the source tree with its build.
            "PYTHONPATH": str(Path(voxwire.__file__).parent.parent),
            "XDG_STATE_HOME": str(tmp / "state"),
        }
        self.env.pop("VOXWIRE_STORE", None)

    def __call__(
        self, *args: str, stdin: str = "", store: bool = True
    ) -> subprocess.CompletedProcess[str]:
        argv = [sys.executable, "-m", "voxwire", *args]
        if store:
            argv += ["--store", self.url]
        return subprocess.run(
            argv, input=stdin, capture_output=True, text=True, env=self.env, timeout=60
        )


def one_line_error(r: subprocess.CompletedProcess[str]) -> str:
    assert r.returncode != 0
    assert "Traceback" not in r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    return lines[0]


def login(db: Path, name: str, password: str) -> str:
    async def go() -> str:
        async with SQLiteStore(db) as store:
            auth = Authenticator(store, jwt=JwtKeys.hs256(os.urandom(32)))
            return (await auth.login(name, password)).owner

    return asyncio.run(go())


def key_owner(db: Path, key: str) -> str | None:
    async def go() -> str | None:
        async with SQLiteStore(db) as store:
            auth = Authenticator(store, jwt=JwtKeys.hs256(os.urandom(32)))
            p = await auth.principal_from_key(key)
            return None if p is None else p.owner

    return asyncio.run(go())


def test_users_add_list_remove(tmp_path: Path) -> None:
    cli = Cli(tmp_path)
    r = cli("users", "add", "alice", "--org", "acme", stdin="pa ss word\n")
    assert r.returncode == 0, r.stderr
    assert "pa ss word" not in r.stdout + r.stderr
    assert login(cli.db, "alice", "pa ss word") == "user:alice"  # spaces kept, newline not

    r = cli("users", "list")
    assert r.returncode == 0
    (line,) = r.stdout.splitlines()
    assert line.startswith("alice\torg=acme\t")
    assert "scrypt" not in r.stdout

    err = one_line_error(cli("users", "add", "alice", stdin="other\n"))
    assert "exists" in err
    assert login(cli.db, "alice", "pa ss word") == "user:alice"  # unchanged

    r = cli("users", "passwd", "alice", stdin="new-one\r\n")
    assert r.returncode == 0, r.stderr
    assert login(cli.db, "alice", "new-one") == "user:alice"

    assert cli("users", "remove", "alice").returncode == 0
    assert cli("users", "list").stdout == ""
    assert "no user" in one_line_error(cli("users", "remove", "alice"))
    assert "no user" in one_line_error(cli("users", "passwd", "alice", stdin="x\n"))


def test_password_errors(tmp_path: Path) -> None:
    cli = Cli(tmp_path)
    assert "no password" in one_line_error(cli("users", "add", "bob", stdin=""))
    assert "empty" in one_line_error(cli("users", "add", "bob", stdin="\n"))
    assert "password" in one_line_error(cli("users", "add", "bob", stdin="x" * 5000 + "\n"))
    assert "name" in one_line_error(cli("users", "add", " bob", stdin="pw\n"))
    assert cli("users", "list").stdout == ""


def test_keys_add_list_remove(tmp_path: Path) -> None:
    cli = Cli(tmp_path)
    assert cli("users", "add", "alice", stdin="pw\n").returncode == 0
    r = cli("keys", "add", "--org", "acme")
    assert r.returncode == 0, r.stderr
    key = r.stdout.strip()
    assert key.startswith("vxk_") and "\n" not in key
    key_id = r.stderr.split("API key ")[1].split()[0]
    assert key_owner(cli.db, key) == f"key:{key_id}"
    assert key not in cli.db.read_bytes().decode("latin-1")

    r = cli("keys", "add", "--user", "alice")
    assert r.returncode == 0
    user_key = r.stdout.strip()
    assert key_owner(cli.db, user_key) == "user:alice"

    r = cli("keys", "list")
    assert r.returncode == 0
    assert key_id in r.stdout and key not in r.stdout and user_key not in r.stdout
    assert len(r.stdout.splitlines()) == 2

    assert "no user" in one_line_error(cli("keys", "add", "--user", "nobody"))
    assert cli("keys", "remove", key_id).returncode == 0
    assert key_owner(cli.db, key) is None
    assert "no API key" in one_line_error(cli("keys", "remove", key_id))

    # Removing a user removes the keys made for them.
    r = cli("users", "remove", "alice")
    assert r.returncode == 0 and "1 API key" in r.stdout
    assert key_owner(cli.db, user_key) is None
    assert cli("keys", "list").stdout == ""


def test_bad_store_and_usage(tmp_path: Path) -> None:
    cli = Cli(tmp_path)
    err = one_line_error(cli("users", "list", "--store", "ftp://x", store=False))
    assert "ftp" in err
    (tmp_path / "nodir").write_text("a file where a folder should be")
    r = cli("users", "list", "--store", f"sqlite:///{tmp_path / 'nodir' / 'x.db'}", store=False)
    one_line_error(r)
    r = cli("users", store=False)
    assert r.returncode == 2 and "Traceback" not in r.stderr  # argparse usage error


def test_default_store_from_the_environment(tmp_path: Path) -> None:
    cli = Cli(tmp_path)
    cli.env["VOXWIRE_STORE"] = cli.url
    assert cli("users", "add", "carol", stdin="pw\n", store=False).returncode == 0
    assert cli("users", "list").stdout.startswith("carol\t")  # the same file via --store
    del cli.env["VOXWIRE_STORE"]
    assert cli("users", "list", store=False).stdout == ""  # the default file: another store
    assert (tmp_path / "state" / "voxwire" / "voxwire.db").exists()
