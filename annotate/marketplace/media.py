"""Local media for local items: `GET /media/<root index>/<relative path>` serves files under the
directories the requester registered (MarketplaceServer(media_roots=...), `serve --media-root`),
so a HIT on the local marketplace can show a local image by URL instead of inlining it.

Only regular files inside a root are served: the path is resolved (symlinks followed) and must stay
inside the resolved root, so `..`, absolute paths and symlinks out of the root all answer 404.
"""

from __future__ import annotations

import mimetypes
import threading
from pathlib import Path
from typing import Sequence
from urllib.parse import quote, unquote

PREFIX = "/media/"

Response = tuple[int, dict[str, str], bytes]


class MediaFiles:
    def __init__(self, roots: Sequence[str | Path] = ()):
        self._roots: list[Path] = []
        self._lock = threading.Lock()
        for root in roots:
            self.add_root(root)

    @property
    def roots(self) -> list[Path]:
        return list(self._roots)

    def add_root(self, root: str | Path) -> int:
        """Register a directory; returns its index in /media/<index>/ (the same directory keeps its index)."""
        path = Path(root).expanduser().resolve()
        if not path.is_dir():
            raise ValueError(f"media root {root} is not a directory")
        with self._lock:
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
        if not index.isdigit() or int(index) >= len(self._roots) or not rest or "\x00" in rest:
            return None
        root = self._roots[int(index)]
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
