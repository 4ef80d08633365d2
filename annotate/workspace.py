"""Where annotate keeps its files: one home directory per project.

The home holds the store (annotate.db) and, for the local target, the embedded
marketplace's own database (marketplace.db), so that separate processes — post now,
harvest later from cron — see the same batches and the same HITs.
"""

from __future__ import annotations

import errno
import fcntl
import os
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Iterator

from annotate.errors import UserError

HOME_ENV = "ANNOTATE_HOME"
DEFAULT_HOME = ".annotate"


@dataclass(frozen=True)
class Workspace:
    home: Path

    @classmethod
    def resolve(cls, home: str | os.PathLike | None = None) -> "Workspace":
        path = Path(home or os.environ.get(HOME_ENV) or DEFAULT_HOME).expanduser().resolve()
        return cls(path)

    def ensure(self) -> "Workspace":
        self.home.mkdir(parents=True, exist_ok=True)
        return self

    @property
    def store_path(self) -> Path:
        return self.home / "annotate.db"

    @property
    def marketplace_db(self) -> Path:
        return self.home / "marketplace.db"

    @property
    def exports(self) -> Path:
        return self.home / "exports"

    @contextmanager
    def lock(self, name: str, *, wait: bool = True,
             busy: Callable[[str], Exception] | None = None) -> Iterator[None]:
        """One `name` at a time per project home (`post`: two runs would both find the batch new).
        An advisory lock on <home>/<name>.lock, released by the OS if the holder dies; the file
        says who holds it. Without `wait`, a held lock raises LockBusy, or `busy(holder)`."""
        path = self.home / f"{name}.lock"
        try:
            self.ensure()
            handle = open(path, "a+")
        except OSError as exc:
            if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
                raise UserError(f"the project home is read-only ({exc.strerror}); `{name}` needs to write to it",
                                file=str(path)) from None
            raise
        with handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
            except BlockingIOError:
                handle.seek(0)
                holder = handle.read().strip() or "another process"
                if busy is not None:
                    raise busy(holder) from None
                raise LockBusy(f"another `{name}` is running in this project home ({holder})", file=str(path)) from None
            handle.seek(0)
            handle.truncate()
            handle.write(f"pid {os.getpid()} since {datetime.now(timezone.utc).isoformat(timespec='seconds')}")
            handle.flush()
            try:
                yield
            finally:
                handle.truncate(0)
                fcntl.flock(handle, fcntl.LOCK_UN)


class LockBusy(UserError):
    """Another process holds a project lock."""
