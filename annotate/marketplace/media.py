"""Local media for local items: `GET /media/<root>/<relative path>` serves files under the
directories the requester registered (MarketplaceServer(media_roots=...), `serve --media-root`, or
`POST /_media` with `root=<directory>`), so a HIT on the local marketplace can show a local image
by URL instead of inlining it.

A root is addressed by its index in this process, or by its name: the first 16 hex digits of the
SHA-256 of its absolute path. Names are the same in every process and are kept in the marketplace's
database, so a HIT rendered with `/media/<name>/…` works on whichever server later shows it.

Only regular files inside a root are served: the path is resolved (symlinks followed) and must stay
inside the resolved root, so `..`, absolute paths and symlinks out of the root all answer 404.
"""

from __future__ import annotations

import hashlib
import mimetypes
import sqlite3
import threading
from pathlib import Path
from typing import Sequence
from urllib.parse import quote, unquote

PREFIX = "/media/"

Response = tuple[int, dict[str, str], bytes]


def root_name(root: str | Path) -> str:
    """A root's name, the same in every process: first 16 hex digits of SHA-256 of its absolute path."""
    return hashlib.sha256(str(Path(root).expanduser().resolve()).encode("utf-8")).hexdigest()[:16]


class MediaFiles:
    def __init__(self, roots: Sequence[str | Path] = (), db_path: str | Path | None = None):
        self._roots: list[Path] = []
        self._named: dict[str, Path] = {}
        self._lock = threading.Lock()
        self._db_path = str(db_path) if db_path is not None else None
        if self._db_path:
            with self._db() as conn:
                conn.execute("create table if not exists media_roots (name text primary key, path text not null)")
        for root in roots:
            self.add_root(root)

    def _db(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self._db_path, timeout=30)
        conn.execute("pragma busy_timeout = 30000")
        return conn

    def register(self, root: str | Path) -> str:
        """Register a directory by name (kept in the database); returns its URL prefix /media/<name>/."""
        self.add_root(root)
        return f"{PREFIX}{root_name(root)}/"

    def _by_name(self, name: str) -> Path | None:
        with self._lock:
            if name in self._named:
                return self._named[name]
        if not self._db_path:
            return None
        with self._db() as conn:
            row = conn.execute("select path from media_roots where name = ?", (name,)).fetchone()
        if row is None or not Path(row[0]).is_dir():
            return None
        with self._lock:
            self._named[name] = Path(row[0])
        return Path(row[0])

    @property
    def roots(self) -> list[Path]:
        return list(self._roots)

    def add_root(self, root: str | Path) -> int:
        """Register a directory; returns its index in /media/<index>/ (the same directory keeps its index)."""
        path = Path(root).expanduser().resolve()
        if not path.is_dir():
            raise ValueError(f"media root {root} is not a directory")
        with self._lock:
            self._named[root_name(path)] = path
            if path in self._roots:
                return self._roots.index(path)
            self._roots.append(path)
            index = len(self._roots) - 1
        if self._db_path:
            with self._db() as conn:
                conn.execute("insert or replace into media_roots (name, path) values (?, ?)", (root_name(path), str(path)))
        return index

    def url_path(self, file: str | Path) -> str:
        """The /media/... path of a file under a registered root (ValueError if it is under none)."""
        path = Path(file).expanduser().resolve()
        for index, root in enumerate(self._roots):
            if path.is_relative_to(root):
                return f"{PREFIX}{index}/{quote(path.relative_to(root).as_posix())}"
        raise ValueError(f"{file} is not under a media root ({', '.join(map(str, self._roots)) or 'none registered'})")

    def resolve(self, url_path: str) -> Path | None:
        """The file a /media/... path names, or None when it names nothing servable."""
        if not url_path.startswith(PREFIX):
            return None
        index, _, rest = unquote(url_path[len(PREFIX):]).partition("/")
        if not rest or "\x00" in rest:
            return None
        if index.isdigit():
            if int(index) >= len(self._roots):
                return None
            root = self._roots[int(index)]
        else:
            found = self._by_name(index)
            if found is None:
                return None
            root = found.resolve()
        try:
            candidate = (root / rest).resolve()  # an absolute `rest` replaces root: caught just below
        except (OSError, RuntimeError):  # a symlink loop, a name the OS refuses
            return None
        if not candidate.is_relative_to(root) or not candidate.is_file():
            return None
        return candidate

    def handle(self, method: str, url_path: str) -> Response | None:
        """Answer GET/HEAD of /media/...: the file, or 404. None when the path is not under /media/."""
        if not url_path.startswith(PREFIX) or method not in ("GET", "HEAD"):
            return None
        path = self.resolve(url_path)
        if path is None:
            return 404, {"Content-Type": "text/plain"}, b"not found"
        kind = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        try:
            data = path.read_bytes()
        except OSError:  # vanished or unreadable since resolve(): as good as absent
            return 404, {"Content-Type": "text/plain"}, b"not found"
        return 200, {"Content-Type": kind, "X-Content-Type-Options": "nosniff",
                     "Cache-Control": "max-age=3600"}, data


def register_media(media: MediaFiles, form: list[tuple[str, str]]) -> Response:
    """POST /_media root=<absolute directory>: 200 with {"prefix": "/media/<name>/"}, or 400."""
    import json

    roots = [v for k, v in form if k == "root"]
    if len(roots) != 1 or not Path(roots[0]).is_absolute() or not Path(roots[0]).is_dir():
        return 400, {"Content-Type": "application/json"}, json.dumps(
            {"error": "give one root=<absolute path of an existing directory>"}).encode()
    return 200, {"Content-Type": "application/json"}, json.dumps({"prefix": media.register(roots[0])}).encode()
