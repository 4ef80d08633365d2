"""Crowd datasets for offline replay: a folder with answers.csv (item,worker,label) and
truth.csv (item,label). Every problem is a UserError naming the file and line."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from .errors import UserError

ANSWER_COLUMNS = ("item", "worker", "label")
TRUTH_COLUMNS = ("item", "label")


@dataclass(frozen=True)
class CrowdDataset:
    answers: pd.DataFrame  # item, worker, label (strings)
    truth: pd.DataFrame  # item, label (strings)
    labels: list[str]  # sorted label set of the answers
    name: str = ""


def _read(path: Path, columns: tuple[str, ...]) -> pd.DataFrame:
    """Read a CSV as strings; line numbers (header = line 1) go in a `_line` column."""
    if not path.is_file():
        raise UserError(f"missing file (expected columns {','.join(columns)})", file=str(path))
    try:
        with path.open(newline="", encoding="utf-8") as fh:
            reader = csv.reader(fh)
            header = next(reader, None)
            if header is None or not any(h.strip() for h in header):
                raise UserError("empty file (no header row)", file=str(path), line=1)
            header = [h.strip() for h in header]
            missing = [c for c in columns if c not in header]
            if missing:
                raise UserError(f"missing column(s) {', '.join(missing)}; header is {','.join(header)}",
                                file=str(path), line=1, field=missing[0])
            pos = [header.index(c) for c in columns]
            rows, lines = [], []
            for row in reader:
                if not row or all(not x.strip() for x in row):
                    continue  # blank lines carry nothing
                if len(row) != len(header):
                    raise UserError(f"expected {len(header)} fields, found {len(row)}",
                                    file=str(path), line=reader.line_num)
                values = [row[p].strip() for p in pos]
                for c, v in zip(columns, values):
                    if not v:
                        raise UserError("empty value", file=str(path), line=reader.line_num, field=c)
                rows.append(values)
                lines.append(reader.line_num)
    except UnicodeDecodeError as exc:
        raise UserError(f"not UTF-8 text ({exc.reason})", file=str(path)) from None
    if not rows:
        raise UserError("no data rows", file=str(path), line=2)
    frame = pd.DataFrame(rows, columns=list(columns), dtype=str)
    frame["_line"] = lines
    return frame


def shared_crowd_data(checkout: Path) -> Path:
    """`../shared/crowd-data` beside a checkout, or beside its parent (a git worktree's folder sits
    one level deeper); the place beside the checkout when neither exists."""
    checkout = Path(checkout).resolve()
    for base in (checkout.parent, checkout.parent.parent):
        if (base / "shared" / "crowd-data").is_dir():
            return base / "shared" / "crowd-data"
    return checkout.parent / "shared" / "crowd-data"


def load_crowd_dataset(directory: str | Path) -> CrowdDataset:
    """Load answers.csv and truth.csv from `directory`, validated."""
    directory = Path(directory)
    if not directory.is_dir():
        raise UserError("not a directory", file=str(directory))
    a_path, t_path = directory / "answers.csv", directory / "truth.csv"
    answers = _read(a_path, ANSWER_COLUMNS)
    truth = _read(t_path, TRUTH_COLUMNS)

    dup = answers.duplicated(["item", "worker"], keep="first")
    if dup.any():
        row = answers[dup].iloc[0]
        first = answers[(answers["item"] == row["item"]) & (answers["worker"] == row["worker"])]["_line"].iloc[0]
        raise UserError(f"duplicate answer: worker {row['worker']!r} already answered item {row['item']!r} "
                        f"on line {first}", file=str(a_path), line=int(row["_line"]), field="worker")
    tdup = truth.duplicated(["item"], keep="first")
    if tdup.any():
        row = truth[tdup].iloc[0]
        raise UserError(f"item {row['item']!r} has a second truth row", file=str(t_path),
                        line=int(row["_line"]), field="item")
    known_items = set(answers["item"])
    unknown = ~truth["item"].isin(known_items)
    if unknown.any():
        row = truth[unknown].iloc[0]
        raise UserError(f"item {row['item']!r} has no answers in {a_path.name}", file=str(t_path),
                        line=int(row["_line"]), field="item")
    labels = sorted(set(answers["label"]))
    outside = ~truth["label"].isin(labels)
    if outside.any():
        row = truth[outside].iloc[0]
        raise UserError(f"label {row['label']!r} is not among the answers' labels {labels}",
                        file=str(t_path), line=int(row["_line"]), field="label")
    return CrowdDataset(
        answers=answers.drop(columns="_line").reset_index(drop=True),
        truth=truth.drop(columns="_line").reset_index(drop=True),
        labels=labels,
        name=directory.name,
    )
