"""Local media for local items: `GET /media/<root>/<relative path>` serves files under the
directories the requester registered, so a HIT on the local marketplace can show a local image by
URL instead of inlining it. Two kinds of root:

- operator roots, given when the server starts (MarketplaceServer(media_roots=...),
  `serve --media-root`): any directory but `/` and system directories, every file in it, for the
  life of that process, addressed by index (/media/0/…) or name;
- batch roots, registered by annotate when it posts (`POST /_media` with `root=<directory>` and
  the marketplace's key, see secret.py): only a batch directory (one holding batch.toml), only its
  media files (images, audio, video, PDF, plain text; never batch.toml, the items or templates),
  kept in the marketplace's database so the HITs work on whichever server later shows them.

A root's name is the first 16 hex digits of the SHA-256 of its resolved path. A batch root read back
from the database is checked again before it serves anything, so a registration an older
marketplace accepted (any directory, from anyone) serves nothing; rows that fail are deleted.

Only regular files inside a root are served: the path is resolved (symlinks followed) and must stay
inside the resolved root, so `..`, absolute paths and symlinks out of the root all answer 404.
"""

from __future__ import annotations

import hashlib
import mimetypes
import os
import sqlite3
import threading
from pathlib import Path
from typing import Sequence
from urllib.parse import quote, unquote

PREFIX = "/media/"
BATCH_FILE = "batch.toml"
# Trees no batch belongs in (beside `/` and every top-level directory itself, which are refused too).
_SYSTEM_TREES = ("/bin", "/boot", "/dev", "/etc", "/lib", "/lib32", "/lib64", "/libx32", "/proc", "/run",
                 "/sbin", "/sys", "/usr/bin", "/usr/lib", "/usr/sbin")
# What a batch root serves: what a HIT shows. Not the batch's own files (items carry gold labels).
_BATCH_MEDIA = ("image/", "audio/", "video/", "text/plain", "application/pdf")

Response = tuple[int, dict[str, str], bytes]


def root_name(root: str | Path) -> str:
    """A root's name, the same in every process: first 16 hex digits of SHA-256 of its absolute path."""
    return hashlib.sha256(str(Path(root).expanduser().resolve()).encode("utf-8")).hexdigest()[:16]


class MediaRootError(ValueError):
    """A directory that may not be a media root, with the reason."""


def _system_directory(path: Path) -> bool:
    """`/`, a top-level directory, the home directory itself, or anything inside a system tree."""
    if path == Path(path.anchor) or path.parent == Path(path.anchor):
        return True
    home = os.path.expanduser("~")
    if home != "~" and path == Path(home).resolve():
        return True
    return any(path.is_relative_to(tree) for tree in _SYSTEM_TREES)


def check_root(root: str | Path, batch: bool) -> Path:
    """The resolved directory, or MediaRootError: not a directory, a system directory, or (for a
    batch root) no batch.toml in it."""
    try:
        path = Path(root).expanduser().resolve()
    except (OSError, RuntimeError) as exc:
        raise MediaRootError(f"media root {root}: {exc}") from None
    if not path.is_dir():
        raise MediaRootError(f"media root {root} is not a directory")
    if _system_directory(path):
        raise MediaRootError(f"media root {root} is {path}, a system directory")
    if batch and not (path / BATCH_FILE).is_file():
        raise MediaRootError(f"media root {root} is not a batch directory (it has no {BATCH_FILE})")
    return path


class MediaFiles:
    def __init__(self, roots: Sequence[str | Path] = (), db_path: str | Path | None = None):
        self._roots: list[Path] = []
        self._named: dict[str, Path] = {}  # the operator's roots and the batch roots checked so far
        self._operator: set[Path] = set()
        self._lock = threading.Lock()
        self._db_path = str(db_path) if db_path is not None else None
        if self._db_path:
            with self._db() as conn:
                conn.execute("create table if not exists media_roots (name text primary key, path text not null)")
                rows = conn.execute("select name, path from media_roots").fetchall()
                # Registrations an older marketplace accepted from anyone, for any directory, go;
                # a batch directory that is only missing now may come back, so it stays.
                bad = [name for name, path in rows if Path(path).exists() and self._checked(name, path) is None]
                conn.executemany("delete from media_roots where name = ?", [(name,) for name in bad])
        for root in roots:
            self.add_root(root)

    def _db(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self._db_path, timeout=30)
        conn.execute("pragma busy_timeout = 30000")
        return conn

    def register(self, root: str | Path) -> str:
        """Register a batch directory by name (kept in the database); returns its URL prefix
        /media/<name>/. MediaRootError for anything but a batch directory."""
        path = check_root(root, batch=True)
        name = root_name(path)
        if self._db_path:
            with self._db() as conn:
                conn.execute("insert or replace into media_roots (name, path) values (?, ?)", (name, str(path)))
        with self._lock:
            self._named.setdefault(name, path)
        return f"{PREFIX}{name}/"

    @staticmethod
    def _checked(name: str, path: str) -> Path | None:
        """A batch root read back from the database, if it still is one under its own name."""
        try:
            resolved = check_root(path, batch=True)
        except MediaRootError:
            return None
        return resolved if root_name(resolved) == name else None

    def _by_name(self, name: str) -> Path | None:
        with self._lock:
            if name in self._named:
                return self._named[name]
        if not self._db_path:
            return None
        with self._db() as conn:
            row = conn.execute("select path from media_roots where name = ?", (name,)).fetchone()
        found = self._checked(name, row[0]) if row is not None else None
        if found is None:
            return None
        with self._lock:
            self._named[name] = found
        return found

    @property
    def roots(self) -> list[Path]:
        return list(self._roots)

    def add_root(self, root: str | Path) -> int:
        """An operator's root, for this process only: returns its index in /media/<index>/ (the same
        directory keeps its index). MediaRootError for `/`, a system directory or a non-directory."""
        path = check_root(root, batch=False)
        with self._lock:
            self._named[root_name(path)] = path
            self._operator.add(path)
            if path in self._roots:
                return self._roots.index(path)
            self._roots.append(path)
            return len(self._roots) - 1

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
        if root not in self._operator:  # a batch root: the pictures, not the batch
            kind = mimetypes.guess_type(candidate.name)[0] or ""
            hidden = any(part.startswith(".") for part in candidate.relative_to(root).parts)
            if hidden or not kind.startswith(_BATCH_MEDIA):
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
    """POST /_media root=<absolute batch directory> (the caller has checked the key): 200 with
    {"prefix": "/media/<name>/"}, or 400 with the reason."""
    import json

    roots = [v for k, v in form if k == "root"]
    if len(roots) != 1 or not Path(roots[0]).is_absolute():
        return 400, {"Content-Type": "application/json"}, json.dumps(
            {"error": "give one root=<absolute path of a batch directory>"}).encode()
    try:
        prefix = media.register(roots[0])
    except MediaRootError as exc:
        return 400, {"Content-Type": "application/json"}, json.dumps({"error": str(exc)}).encode()
    return 200, {"Content-Type": "application/json"}, json.dumps({"prefix": prefix}).encode()
