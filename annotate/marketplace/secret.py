"""The marketplace's key: a random secret made on the first start and kept in its database.

The local marketplace's own extensions that only the requester may use (registering a media root
with `POST /_media`; the worker listing with each HIT's RequesterAnnotation, for the simulated
crowds) need the request to carry it in the `X-Annotate-Key` header. annotate reads it from the
marketplace database of its project home, or from ANNOTATE_MARKETPLACE_KEY when the marketplace
runs on another database. Anyone who can read the database file is the requester anyway.
"""

from __future__ import annotations

import hmac
import secrets
import sqlite3
from pathlib import Path

KEY_HEADER = "X-Annotate-Key"
ENV_VAR = "ANNOTATE_MARKETPLACE_KEY"
_TABLE = "marketplace_key"
# host:port -> key of the marketplaces serving in this process, for the crowds it runs beside them.
_serving: dict[str, str] = {}


def _connect(db_path: str | Path) -> sqlite3.Connection:
    conn = sqlite3.connect(str(db_path), timeout=30)
    conn.execute("pragma busy_timeout = 30000")
    return conn


def ensure_key(db_path: str | Path) -> str:
    """The database's key, made now if it has none (two processes starting at once agree on one)."""
    conn = _connect(db_path)
    try:
        with conn:
            conn.execute(f"create table if not exists {_TABLE} (id integer primary key check (id = 1), key text not null)")
            conn.execute(f"insert or ignore into {_TABLE} (id, key) values (1, ?)", (secrets.token_hex(32),))
        return conn.execute(f"select key from {_TABLE} where id = 1").fetchone()[0]
    finally:
        conn.close()


def read_key(db_path: str | Path) -> str | None:
    """The key of an existing marketplace database, or None (never creates the file)."""
    if not Path(db_path).is_file():
        return None
    try:
        conn = sqlite3.connect(f"file:{Path(db_path).resolve()}?mode=ro", uri=True, timeout=30)
    except sqlite3.Error:
        return None
    try:
        row = conn.execute(f"select key from {_TABLE} where id = 1").fetchone()
    except sqlite3.Error:  # no such table: a marketplace from before keys, or not a marketplace at all
        return None
    finally:
        conn.close()
    return row[0] if row else None


def key_matches(expected: str, given: str | None) -> bool:
    """Constant-time comparison, so the key cannot be guessed a character at a time."""
    return given is not None and hmac.compare_digest(expected.encode("utf-8"), given.encode("utf-8", "replace"))


def publish(netloc: str, key: str) -> None:
    """A marketplace in this process serves at `netloc` (host:port) with this key."""
    _serving[netloc] = key


def withdraw(netloc: str) -> None:
    _serving.pop(netloc, None)


def serving_key(netloc: str) -> str | None:
    """The key of the marketplace serving at `netloc` in this process, if one does."""
    return _serving.get(netloc)
