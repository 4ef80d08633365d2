"""Exports of a batch's consensus labels: Ground Truth augmented manifest and CSV, with a
stratified train/validation split.

Manifest lines follow Ground Truth's image/text classification output:
    {"source-ref": "s3://…/1.png", "<attr>": 3,
     "<attr>-metadata": {"class-name": "3", "confidence": 0.97, "type": "groundtruth/image-classification",
                         "job-name": "labeling-job/<batch>", "human-annotated": "yes",
                         "creation-date": "2026-11-21T16:00:00.000000"}}
An item without `source-ref`/`source` columns gets `source` = its input columns as JSON.

Every batch's files go in a folder of its own, `<out>/<batch>/` (as Ground Truth puts a labeling
job's output under the job's name), so batches exported to the same place never replace each
other's `train.*`/`validation.*`: <batch>.manifest, <batch>.csv, train.manifest, validation.manifest,
train.csv, validation.csv (and masks/ for segmentation). A re-export writes every file under a
temporary name first and renames them into place at the end, so a failure (a full disk) leaves the
previous export whole; files of the previous export this one does not write (train.* after
`--no-split`) are removed, so the folder always holds one export.

`source-ref` is written the same way in the manifest and in the CSV: `absolute` (a local media path
made absolute from the batch folder; the default) or `s3` (the path under the batch folder, put
under `s3_prefix`, for media uploaded there with e.g. `aws s3 sync <batch dir> <prefix>`).
References that are already URLs (`s3://…`, `https://…`) are left as they are.

CSV cells hold text workers typed, and a spreadsheet runs a cell that starts with `=`, `+`, `-`,
`@`, tab or carriage return as a formula (CSV injection). As OWASP recommends, such text cells
are written with a leading single quote, which spreadsheets show as text; numbers, and text that
is only numbers ("-0.5", a "-1 2 -3" pixel list), stay as they are. `raw_csv` writes every cell
exactly as stored. Manifests are JSON and never altered.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Callable

import pandas as pd
from sklearn.model_selection import train_test_split

from annotate import automation
from annotate.errors import UserError
from annotate.store import Store
from annotate.tasktypes import TaskSpec, get_task_type
from annotate.workspace import Workspace

FORMATS = ("manifest", "csv")
SOURCE_REFS = ("absolute", "s3")
PARTS = ("", "train", "validation")  # "": the whole batch, named after it


@dataclass
class ExportResult:
    batch: str
    label_attribute: str
    labels: list[str]
    n_items: int
    dir: Path | None = None  # <out>/<batch>: this batch's folder
    manifest: Path | None = None
    csv: Path | None = None
    train_manifest: Path | None = None
    validation_manifest: Path | None = None
    train_csv: Path | None = None
    validation_csv: Path | None = None
    n_train: int = 0
    n_validation: int = 0
    # expected share of right labels (mean calibrated `confidence`) with a 95% interval
    accuracy_estimate: dict | None = None
    files: list[Path] = field(default_factory=list)


def labelled_frame(store: Store, batch_name: str) -> tuple[dict, pd.DataFrame]:
    """One row per labelled item: id, input columns (minus gold), label, label_index (single-label
    tasks), confidence, answers; `_value` and `_decided_at` ride along for the manifest."""
    batch = store.get_batch(batch_name)
    if batch is None:
        raise UserError(f"no batch named {batch_name!r} (known: {', '.join(store.batch_names()) or 'none'})")
    task_type = get_task_type(batch["task_type"])
    index = {name: i for i, name in enumerate(batch["labels"])}
    # Only single-label harvests store a per-item answer count; count the others' answers here.
    counted = None if task_type.single_label else _answer_counts(store, batch_name)
    rows = []
    # One pass over a join, row by row: the whole batch's items and labels as dicts side by side
    # would be ~400 MB at 100,000 items.
    for item_id, data, value, confidence, answers, decided_at in store.labelled_items(batch_name):
        value = json.loads(value)
        row = {"id": item_id, **{k: v for k, v in json.loads(data).items() if k != "id"}}
        row["label"] = task_type.csv_value(value)
        if task_type.single_label:
            row["label_index"] = index[value]
        if counted is not None:
            answers = answers or counted.get(item_id, 0)
        row.update(confidence=round(float(confidence or 0.0), 4), answers=int(answers or 0),
                   _decided_at=decided_at, _value=value)
        rows.append(row)
    if automation.enabled(batch):  # machine labels beside the crowd's, in item order, marked as such
        rows = automation.with_machine_labels(store, batch, index, rows)
    return batch, _training_order(pd.DataFrame(rows), batch)


def _answer_counts(store: Store, batch_name: str) -> dict[str, int]:
    """Usable answers per item (the ones consolidation read): submitted or approved, unquarantined."""
    return {r["item_id"]: r["n"] for r in store.db.query(
        "select item_id, count(*) as n from assignments where batch = ? and value is not null "
        "and quarantine is null and status != 'Rejected' group by item_id", [batch_name])}


def _training_order(frame: pd.DataFrame, batch: dict) -> pd.DataFrame:
    """Columns: id, the [training] features in their order (what the model is fed), the rest as stored."""
    features = ((batch.get("config") or {}).get("training") or {}).get("features") or []
    if isinstance(features, str):
        features = [features]
    first = ["id", *[f for f in features if f in frame.columns and f != "id"]]
    return frame[[c for c in first if c in frame.columns] + [c for c in frame.columns if c not in first]]


PRIVATE = ("_decided_at", "_value")
RESULT_COLUMNS = ("id", "label", "label_index", "confidence", "answers", "human-annotated", *PRIVATE)


def manifest_line(batch: dict, row: dict, data_columns: list[str], out_dir: Path | None = None,
                  task_type=None, spec: TaskSpec | None = None) -> dict:
    task_type = task_type or get_task_type(batch["task_type"])
    spec = spec or TaskSpec.from_batch_row(batch)
    line: dict = {}
    if row.get("source-ref") not in (None, ""):
        # export_batch has placed it already (source_ref()); as given, a relative path is made absolute.
        line["source-ref"] = source_ref(str(row["source-ref"]), batch["dir"])
    elif row.get("source") not in (None, ""):
        line["source"] = str(row["source"])
    else:
        line["source"] = json.dumps({k: row[k] for k in data_columns}, sort_keys=True, default=str)
    meta = {"job-name": f"labeling-job/{batch['name']}", "human-annotated": row.get("human-annotated", "yes"),
            "creation-date": _gt_date(row.get("_decided_at"))}
    # Some labels are files (a segmentation mask): written beside the manifest, referenced from it.
    files = task_type.write_artifacts(spec, str(row["id"]), row["_value"], out_dir) if out_dir is not None else {}
    extra = {"artifacts": files} if files else {}
    line.update(task_type.manifest_entries(spec, row["_value"], float(row["confidence"]), meta, **extra))
    return line


def source_ref(ref: str, batch_dir: str | Path, mode: str = "absolute", s3_prefix: str | None = None,
               item: str | None = None) -> str:
    """Where a manifest line and a CSV row say an item's media is. `absolute`: a path relative to the
    batch folder made absolute (usable from anywhere on this machine). `s3`: the path under the
    batch folder, put under `s3_prefix` (a media file outside the batch folder cannot be placed
    there: UserError naming the item). URLs are left as they are."""
    if not ref or "://" in ref:
        return ref
    if mode == "absolute":
        return ref if os.path.isabs(ref) else str(Path(batch_dir) / ref)
    path = Path(ref)
    if path.is_absolute():
        try:
            path = path.relative_to(Path(batch_dir))
        except ValueError:
            raise UserError(f"source-ref {ref!r} of item {item!r} is outside the batch folder {batch_dir}, "
                            "so it has no place under --s3-prefix (use --source-ref absolute)",
                            field="source-ref") from None
    return f"{s3_prefix.rstrip('/')}/{path.as_posix()}"


def source_ref_of(ref, batch_dir: str | Path, mode: str, s3_prefix: str | None, item) -> Any:
    """A CSV/manifest cell of the `source-ref` column, placed by source_ref() (empty cells kept)."""
    if ref is None or (isinstance(ref, float) and pd.isna(ref)) or ref == "":
        return ref
    return source_ref(str(ref), batch_dir, mode, s3_prefix, item=str(item))


def _check_source_ref(mode: str, s3_prefix: str | None) -> None:
    if mode not in SOURCE_REFS:
        raise UserError(f"unknown --source-ref {mode!r} (use {' or '.join(SOURCE_REFS)})", field="--source-ref")
    if mode == "s3" and not (s3_prefix or "").startswith("s3://"):
        raise UserError("--source-ref s3 needs --s3-prefix s3://bucket/prefix (where the batch folder's media is)",
                        field="--s3-prefix")
    if mode != "s3" and s3_prefix:
        raise UserError("--s3-prefix goes with --source-ref s3", field="--s3-prefix")


def batch_dir(out_dir: str | Path, batch_name: str) -> Path:
    """Where export_batch writes a batch's files under `out_dir`."""
    return Path(out_dir) / batch_name


def _gt_date(iso: str | None) -> str:
    """Ground Truth writes creation-date as naive UTC with microseconds."""
    when = datetime.fromisoformat(iso.replace("Z", "+00:00")) if iso else datetime.utcnow()
    return when.replace(tzinfo=None).isoformat(timespec="microseconds")


def _write_atomic(path: Path, text: str) -> None:
    _commit([(_stage(path, text), path)])


def _stage(path: Path, text: str) -> Path:
    """`text` written whole to a temporary file beside `path` (renamed into place by _commit)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            handle.write(text)
    except BaseException as exc:
        os.unlink(tmp)
        if isinstance(exc, OSError) and exc.filename is None:
            exc.filename = str(path)  # a full disk says so on write(), without naming the file
        raise
    return Path(tmp)


def _commit(staged: list[tuple[Path, Path]]) -> None:
    """Rename every staged file into place; should one rename fail, the rest are removed."""
    try:
        for tmp, path in staged:
            os.replace(tmp, path)
    finally:
        for tmp, _ in staged:
            if tmp.exists():
                tmp.unlink()


# OWASP's list: a spreadsheet reads a cell starting with one of these as a formula.
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_NUMBER = r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?"
_NUMBERS = re.compile(rf"{_NUMBER}(?:[ ,]+{_NUMBER})*")


def neutralise_formula(value):
    """A text cell a spreadsheet would run as a formula, with a leading single quote (OWASP);
    anything else (numbers, text that is only numbers, other text) as it is."""
    if isinstance(value, str) and value.startswith(FORMULA_START) and not _NUMBERS.fullmatch(value):
        return "'" + value
    return value


def csv_safe(frame: pd.DataFrame) -> pd.DataFrame:
    """The frame with every formula-leading text cell neutralised. Only text columns can hold
    one (numeric columns, negative numbers included, are left alone); column names are the
    requester's own and are kept, since training scripts look columns up by name."""
    text = [c for c in frame.columns if not pd.api.types.is_numeric_dtype(frame[c].dtype)]
    if not text:
        return frame
    return frame.assign(**{c: frame[c].map(neutralise_formula) for c in text})


def split_frame(frame: pd.DataFrame, split: float, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Stratified by label when every label has at least two items, else a plain seeded split."""
    if len(frame) < 2:
        return frame, frame.iloc[0:0]
    counts = frame["label"].value_counts()
    n_val = max(1, round(len(frame) * (1 - split)))
    stratify = frame["label"] if counts.min() >= 2 and n_val >= len(counts) and len(frame) - n_val >= len(counts) else None
    train, val = train_test_split(frame, test_size=n_val, random_state=seed, stratify=stratify)
    return train.sort_index(), val.sort_index()


def export_batch(
    ws: Workspace,
    batch_name: str,
    out_dir: str | Path,
    formats: tuple[str, ...] | list[str] = FORMATS,
    split: float | None = 0.8,
    seed: int = 0,
    raw_csv: bool = False,
    source_ref: str = "absolute",
    s3_prefix: str | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> ExportResult:
    """Write the batch's labels in `out_dir`/<batch>/ (see the module's docstring for the names, how
    a re-export replaces its files, and `source_ref`). CSV text cells that a spreadsheet would run
    as a formula get a leading single quote unless `raw_csv`. `progress(done, total)` is called as
    manifest lines are made and files written."""
    for f in formats:
        if f not in FORMATS:
            raise UserError(f"unknown export format {f!r} (use {', '.join(FORMATS)})", field="--format")
    if split is not None and not 0 < split < 1:
        raise UserError(f"--split is the training share, between 0 and 1 (got {split})", field="--split")
    _check_source_ref(source_ref, s3_prefix)
    store = Store(ws.store_path, readonly=True)  # reading never writes: works on a read-only store
    batch, frame = labelled_frame(store, batch_name)
    if frame.empty:
        raise UserError(f"batch {batch_name!r} has no labelled items yet (run `annotate harvest`)")
    if "source-ref" in frame.columns:  # placed once, so the manifest and the CSV say the same
        frame = frame.assign(**{"source-ref": [source_ref_of(r, batch["dir"], source_ref, s3_prefix, i)
                                               for r, i in zip(frame["source-ref"], frame["id"])]})
    out = batch_dir(out_dir, batch_name)
    from annotate.results import accuracy_estimate

    result = ExportResult(batch=batch_name, label_attribute=batch["label_attribute"], labels=list(batch["labels"]),
                          n_items=len(frame), dir=out, accuracy_estimate=accuracy_estimate(store, batch_name))
    data_columns = [c for c in frame.columns if c not in RESULT_COLUMNS]
    parts = {"": frame}
    if split is not None:
        train, val = split_frame(frame, split, seed)
        parts.update({"train": train, "validation": val})
        result.n_train, result.n_validation = len(train), len(val)
    n_files = len(parts) * len(formats)
    total = (len(frame) if "manifest" in formats else 0) + n_files
    done = 0

    def tick(n: int = 1) -> None:
        nonlocal done
        done += n
        if progress:
            progress(done, total)

    if "manifest" in formats:
        # Each line is made once (and its artifacts written once); the split files reuse them.
        task_type, spec = get_task_type(batch["task_type"]), TaskSpec.from_batch_row(batch)
        columns = list(frame.columns)
        records = (dict(zip(columns, values)) for values in frame.itertuples(index=False, name=None))  # one at a time
        every = max(1, len(frame) // 100)
        lines = []
        for r in records:
            lines.append(json.dumps(manifest_line(batch, r, data_columns, out, task_type, spec), ensure_ascii=False) + "\n")
            if len(lines) % every == 0:
                tick(every)
        tick(len(lines) % every)
        encoded = pd.Series(lines, index=frame.index)
    staged: list[tuple[Path, Path]] = []
    try:
        for part, df in parts.items():
            stem = part or batch_name
            if "manifest" in formats:
                path = out / f"{stem}.manifest"
                staged.append((_stage(path, "".join(encoded.loc[df.index])), path))
                setattr(result, f"{part}_manifest" if part else "manifest", path)
                result.files.append(path)
                tick()
            if "csv" in formats:
                path = out / f"{stem}.csv"
                table = df.drop(columns=list(PRIVATE))
                staged.append((_stage(path, (table if raw_csv else csv_safe(table)).to_csv(index=False)), path))
                setattr(result, f"{part}_csv" if part else "csv", path)
                result.files.append(path)
                tick()
    except BaseException:  # nothing renamed yet: the previous export stays whole
        for tmp, _ in staged:
            tmp.unlink(missing_ok=True)
        raise
    _commit(staged)
    # The folder holds one export: files of the previous one that this one did not write go.
    written = set(result.files)
    for part in PARTS:
        for fmt in FORMATS:
            old = out / f"{part or batch_name}.{fmt}"
            if old not in written and old.exists():
                old.unlink()
    return result
