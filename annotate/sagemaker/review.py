"""The reverse loop of the MTurk + SageMaker tutorials: the items a deployed model is unsure of
go back to the crowd as a new batch (the source batch's settings, these items only)."""

from __future__ import annotations

import csv
import re
import shutil
from pathlib import Path
from typing import Sequence

from annotate.errors import UserError
from annotate.sagemaker.predict import Prediction

# [batch] keys that no longer hold: the new items carry no gold or known answers.
DROPPED_KEYS = ("gold_column", "known_answer_column")


def unsure(predictions: Sequence[Prediction], below: float) -> list[Prediction]:
    """The predictions scoring under `below` (or with no score at all)."""
    return [p for p in predictions if p.score is None or p.score < below]


def _batch_toml(text: str, name: str) -> str:
    """The source batch.toml with [batch] renamed, pointed at items.csv, and gold dropped."""
    out, section, seen = [], None, set()
    for line in text.splitlines():
        header = re.match(r"\s*\[([^\]]+)\]\s*(#.*)?$", line)
        if header:
            if section == "batch" and "items" not in seen:
                out.append('items = "items.csv"')
            section = header.group(1).strip()
        key = re.match(r"\s*([A-Za-z0-9_-]+)\s*=", line)
        if section == "batch" and key:
            seen.add(key.group(1))
            if key.group(1) == "name":
                line = f'name = "{name}"'
            elif key.group(1) == "items":
                line = 'items = "items.csv"'
            elif key.group(1) in DROPPED_KEYS:
                continue
        out.append(line)
    return "\n".join(out) + "\n"


def write_review_batch(source_dir: Path, out_dir: Path, predictions: Sequence[Prediction], *,
                       below: float) -> int:
    """Write a batch folder at out_dir holding the unsure items; returns how many (0: nothing written)."""
    if not 0.0 < below <= 1.0:
        raise UserError("--below is a score between 0 and 1", field="below")
    bare = [p.input for p in predictions if p.item is None]
    if bare:
        raise UserError(f"{bare[0]} is a bare row: give the exported CSV or manifest, whose rows name their items",
                        field="input")
    picked = unsure(predictions, below)
    if not picked:
        return 0
    out_dir = Path(out_dir)
    if out_dir.exists() and any(out_dir.iterdir()):
        raise UserError(f"{out_dir} is not empty: choose a new folder for the batch", field="to_batch")
    source_dir = Path(source_dir)
    toml = source_dir / "batch.toml"
    if not toml.is_file():
        raise UserError("the source batch folder has no batch.toml", file=str(toml))
    name = re.sub(r"[^A-Za-z0-9_-]+", "-", out_dir.name).strip("-") or "review"
    try:
        # templates and media the items refer to come along; the old items and settings do not
        shutil.copytree(source_dir, out_dir, dirs_exist_ok=True, ignore=shutil.ignore_patterns(
            "batch.toml", "items.*", "__pycache__", "*.pyc"))
        (out_dir / "batch.toml").write_text(_batch_toml(toml.read_text(encoding="utf-8"), name), encoding="utf-8")
        columns: list[str] = []
        for prediction in picked:
            columns += [c for c in prediction.item if c not in columns]
        columns = ["id", *[c for c in columns if c != "id"]]
        with (out_dir / "items.csv").open("w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=columns)
            writer.writeheader()
            writer.writerows({k: prediction.item.get(k, "") for k in columns} for prediction in picked)
        from annotate.config import load_batch

        load_batch(out_dir)  # what `annotate post` will read: refuse it now, not then
    except BaseException:
        shutil.rmtree(out_dir, ignore_errors=True)
        raise
    return len(picked)
