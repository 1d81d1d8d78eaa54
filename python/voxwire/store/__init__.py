"""The platform's state: users, keys, tokens, conversations, leases and rate limits.

See :mod:`voxwire.store.base` for the interface, :mod:`voxwire.store.sqlite` and
:mod:`voxwire.store.redis` for the two backends, and :func:`open_store` to pick one by URL.
"""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from voxwire.errors import ConfigError
from voxwire.store.base import (
    ApiKeyRecord,
    ConversationRecord,
    RateDecision,
    Store,
    UserRecord,
)
from voxwire.store.sqlite import SQLiteStore, default_sqlite_path

__all__ = [
    "ApiKeyRecord",
    "ConversationRecord",
    "RateDecision",
    "SQLiteStore",
    "Store",
    "UserRecord",
    "default_sqlite_path",
    "open_store",
]


def open_store(url: str | None, *, timeout: float = 2.0) -> Store:
    """The store a URL names, not yet opened (``await store.open()`` or ``async with``).

    - ``None`` or ``sqlite://``: SQLite at :func:`default_sqlite_path`;
    - ``sqlite:///abs/path.db``: SQLite at that absolute path;
    - ``redis://[[user]:password@]host:port/db`` (``rediss://`` for TLS,
      ``unix:///path.sock?db=N``): Redis; an optional ``prefix=`` query parameter sets the key
      prefix (default ``voxwire:``).

    ``timeout`` bounds every call, in seconds. Anything else raises
    :class:`~voxwire.errors.ConfigError` with a one-line message (which never repeats a
    password).
    """
    if url is None:
        return SQLiteStore(None, timeout=timeout)
    scheme, sep, rest = url.partition("://")
    scheme = scheme.lower()
    if not sep:
        raise ConfigError("store URL must look like sqlite:///path or redis://host:port/db")
    if scheme == "sqlite":
        if rest == "":
            return SQLiteStore(None, timeout=timeout)
        if not rest.startswith("/") or rest.strip("/") == "":
            raise ConfigError("sqlite store URL needs an absolute path: sqlite:///abs/path.db")
        if "?" in rest or "#" in rest:
            raise ConfigError("sqlite store URL takes no query or fragment")
        return SQLiteStore(rest, timeout=timeout)
    if scheme in ("redis", "rediss", "unix"):
        parts = urlsplit(url)
        try:
            query = parse_qsl(parts.query, keep_blank_values=True)
            port = parts.port
        except ValueError:
            raise ConfigError("redis store URL is malformed (host, port or query)") from None
        if scheme != "unix" and not parts.hostname:
            raise ConfigError("redis store URL needs a host: redis://host:port/db")
        if port is not None and not 0 < port < 65536:
            raise ConfigError("redis store URL has an invalid port")
        db = parts.path.strip("/")
        if scheme != "unix" and db and not db.isdigit():
            raise ConfigError("redis store URL's database must be a number: redis://host:port/0")
        prefix = "voxwire:"
        kept = []
        for k, v in query:
            if k == "prefix":
                prefix = v
            else:
                kept.append((k, v))
        clean = urlunsplit(parts._replace(query=urlencode(kept)))
        try:
            from voxwire.store.redis import RedisStore
        except ImportError:
            raise ConfigError(
                "the redis store needs redis-py: pip install 'voxwire[server]'"
            ) from None

        return RedisStore(clean, timeout=timeout, prefix=prefix)
    raise ConfigError(
        f"unknown store URL scheme {scheme[:20]!r}: use sqlite:///path or redis://host:port/db"
    )
