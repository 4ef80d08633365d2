"""Where annotate keeps its files: one home directory per project.

The home holds the store (annotate.db) and, for the local target, the embedded
marketplace's own database (marketplace.db), so that separate processes — post now,
harvest later from cron — see the same batches and the same HITs.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

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
