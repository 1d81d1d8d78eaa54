"""``voxwire users ...`` and ``voxwire keys ...``: accounts and API keys in the store.

Every command takes ``--store URL`` (``sqlite:///path``, ``redis://HOST:PORT/DB``; default
``$VOXWIRE_STORE``, else the SQLite file under the state directory). Every failure is one
line on stderr and a non-zero exit code (1; 2 for a usage error), never a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import os
import sys
import time
from typing import TYPE_CHECKING, Any, TextIO

from voxwire.errors import InvalidInputError, VoxwireError

if TYPE_CHECKING:
    from voxwire.auth import Authenticator
    from voxwire.store.base import Store

__all__ = ["COMMANDS", "open_store", "read_password", "register", "run"]

#: The top-level commands this module adds.
COMMANDS = ("users", "keys")


def register(subparsers: Any) -> None:
    """Add the ``users`` and ``keys`` commands to the ``voxwire`` parser's subparsers."""

    def store_option(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--store",
            default=None,
            metavar="URL",
            help="sqlite:///PATH or redis://HOST:PORT/DB (default: $VOXWIRE_STORE, else the "
            "SQLite file in the state directory)",
        )

    users = subparsers.add_parser("users", help="users who log in with a password")
    us = users.add_subparsers(dest="admin_command", required=True)
    a = us.add_parser(
        "add",
        help="add a user; the password is prompted for, or read as one line from stdin "
        "when it is not a terminal",
    )
    a.add_argument("name")
    a.add_argument("--org", default="", help="the user's organisation")
    a.add_argument("--scope", action="append", default=[], help="a scope (repeatable)")
    store_option(a)
    ls = us.add_parser("list", help="list users")
    store_option(ls)
    rm = us.add_parser("remove", help="remove a user and the API keys made for them")
    rm.add_argument("name")
    store_option(rm)
    pw = us.add_parser("passwd", help="change a user's password (read like 'users add')")
    pw.add_argument("name")
    store_option(pw)

    keys = subparsers.add_parser("keys", help="API keys (kept hashed; shown once)")
    ks = keys.add_subparsers(dest="admin_command", required=True)
    ka = ks.add_parser("add", help="make an API key and print it (only this once)")
    ka.add_argument("--org", default="", help="the key's organisation")
    ka.add_argument("--user", default=None, help="the user the key acts for")
    ka.add_argument("--scope", action="append", default=[], help="a scope (repeatable)")
    store_option(ka)
    kl = ks.add_parser("list", help="list key ids (never the keys)")
    store_option(kl)
    kr = ks.add_parser("remove", help="remove a key by its id")
    kr.add_argument("key_id")
    store_option(kr)


def open_store(url: str | None) -> Store:
    """The store of ``--store URL``, not yet opened; ``$VOXWIRE_STORE`` when no URL is given.

    See :func:`voxwire.store.open_store` (raises InvalidInputError for an unusable URL).
    """
    from voxwire.store import open_store as store_from_url

    return store_from_url(url if url is not None else os.environ.get("VOXWIRE_STORE") or None)


def read_password(*, stdin: TextIO | None = None) -> str:
    """The new password: prompted twice on a terminal, else one line read from stdin.

    Raises InvalidInputError when it is empty, when the two entries differ, or when stdin ends
    first.
    """
    stdin = stdin if stdin is not None else sys.stdin
    if stdin.isatty():
        pw = getpass.getpass("Password: ")
        if pw != getpass.getpass("Password (again): "):
            raise InvalidInputError("the passwords differ")
    else:
        line = stdin.readline()
        if not line:
            raise InvalidInputError("no password on stdin")
        pw = line.removesuffix("\n").removesuffix("\r")
    if not pw:
        raise InvalidInputError("empty password")
    return pw


def _when(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t)) if t else "-"


async def _admin(args: argparse.Namespace, auth: Authenticator, store: Store) -> int:
    cmd = (args.command, args.admin_command)
    if cmd == ("users", "add"):
        password = read_password()
        await auth.add_user(args.name, password, org=args.org, scopes=args.scope)
        print(f"voxwire: user {args.name!r} added")
    elif cmd == ("users", "passwd"):
        password = read_password()
        if not await auth.set_password(args.name, password):
            raise InvalidInputError(f"no user named {args.name!r}")
        print(f"voxwire: password of {args.name!r} changed")
    elif cmd == ("users", "list"):
        for u in await store.list_users():
            scopes = ",".join(u.scopes) or "-"
            print(f"{u.name}\torg={u.org or '-'}\tscopes={scopes}\tcreated={_when(u.created_at)}")
    elif cmd == ("users", "remove"):
        if not await store.remove_user(args.name):
            raise InvalidInputError(f"no user named {args.name!r}")
        removed = [k.key_id for k in await store.list_api_keys() if k.user == args.name]
        for key_id in removed:
            await store.remove_api_key(key_id)
        extra = f" and {len(removed)} API key(s) made for them" if removed else ""
        print(f"voxwire: user {args.name!r}{extra} removed")
    elif cmd == ("keys", "add"):
        key_id, key = await auth.add_api_key(org=args.org, user=args.user, scopes=args.scope)
        print(key, flush=True)
        print(f"voxwire: API key {key_id} added; it is shown only this once", file=sys.stderr)
    elif cmd == ("keys", "list"):
        for k in await store.list_api_keys():
            scopes = ",".join(k.scopes) or "-"
            print(
                f"{k.key_id}\torg={k.org or '-'}\tuser={k.user or '-'}\tscopes={scopes}"
                f"\tcreated={_when(k.created_at)}"
            )
    elif cmd == ("keys", "remove"):
        if not await store.remove_api_key(args.key_id):
            raise InvalidInputError(f"no API key with id {args.key_id!r}")
        print(f"voxwire: API key {args.key_id} removed")
    else:  # pragma: no cover - argparse only lets known commands through
        raise AssertionError(cmd)
    return 0


async def _main(args: argparse.Namespace) -> int:
    from voxwire.auth import Authenticator, JwtKeys

    store = open_store(args.store)
    await store.open()
    try:
        # These commands issue no token: a throwaway secret spares the state directory.
        auth = Authenticator(store, jwt=JwtKeys.hs256(os.urandom(32)))
        return await _admin(args, auth, store)
    finally:
        await store.close()


def run(args: argparse.Namespace) -> int:
    """Run a ``users`` / ``keys`` command; its exit code (errors: one line on stderr)."""
    try:
        return asyncio.run(_main(args))
    except KeyboardInterrupt:
        print("voxwire: interrupted", file=sys.stderr)
        return 130
    except (VoxwireError, OSError, EOFError) as e:
        msg = " ".join(str(e).split()) or type(e).__name__
        print(f"voxwire {args.command} {args.admin_command}: {msg}", file=sys.stderr)
        return 1
    except Exception as e:  # still one line, no traceback
        msg = " ".join(str(e).split())
        print(
            f"voxwire {args.command} {args.admin_command}: unexpected {type(e).__name__}: {msg}",
            file=sys.stderr,
        )
        return 1
