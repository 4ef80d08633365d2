"""Checks on an export before anything trains on it: every user mistake found here is a
UserError naming the file and line, raised before any upload or subprocess."""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from annotate.errors import UserError


def export_path(export: Any, name: str) -> Path | None:
    """An ExportResult path attribute (or dict key), None when not written."""
    value = export.get(name) if isinstance(export, dict) else getattr(export, name, None)
    return Path(value) if value else None


def export_value(export: Any, name: str, default: Any = None) -> Any:
    value = export.get(name) if isinstance(export, dict) else getattr(export, name, None)
    return default if value is None else value


@dataclass
class CsvSummary:
    path: Path
    columns: list[str]
    labelled_rows: int
    names: dict[int, str] = field(default_factory=dict)


def summarise_csv(path: Path, features: list[str]) -> CsvSummary:
    """Columns and labelled rows of an exported CSV; every feature column must be there."""
    if not path.exists():
        raise UserError("exported CSV not found", file=str(path))
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        columns = list(reader.fieldnames or [])
        if "label_index" not in columns:
            raise UserError("no 'label_index' column: not an annotate export", file=str(path), line=1)
        for feature in features:
            if feature not in columns:
                raise UserError(f"feature column '{feature}' is not in the export (columns: {', '.join(columns)})",
                                file=str(path), line=1, field="training.features")
        count, names = 0, {}
        for row in reader:
            text = (row.get("label_index") or "").strip()
            if text:
                count += 1
                names[int(float(text))] = row.get("label") or text
    return CsvSummary(path, columns, count, names)


def read_manifest(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, object) for each non-blank line of an augmented manifest (JSON Lines)."""
    if not path.exists():
        raise UserError("manifest not found", file=str(path))
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise UserError(f"not JSON: {exc.msg}", file=str(path), line=number) from None
            if not isinstance(record, dict):
                raise UserError("each manifest line must be a JSON object", file=str(path), line=number)
            yield number, record


@dataclass
class ManifestSummary:
    path: Path
    records: int
    attribute_names: list[str]
    class_names: dict[int, str]
    task_type: str | None = None  # Ground Truth's `-metadata.type`, e.g. groundtruth/object-detection


def summarise_manifest(path: Path, label_attribute: str, algorithm: str) -> ManifestSummary:
    """Count records and find the attribute the built-in algorithm reads.

    Semantic segmentation manifests carry the mask under `<attribute>-ref`; the others under
    the attribute itself. Every line must have `source-ref` and the label attribute.
    """
    key = f"{label_attribute}-ref" if algorithm == "semantic-segmentation" else label_attribute
    records, names, task_type = 0, {}, None
    for number, record in read_manifest(path):
        if algorithm == "semantic-segmentation" and key not in record and label_attribute in record:
            key = label_attribute  # a manifest written with the plain attribute name
        if algorithm != "semantic-segmentation" and key not in record and f"{label_attribute}-ref" in record:
            key = f"{label_attribute}-ref"  # a mask: found, so the task type check can name it
        if "source-ref" not in record:
            raise UserError("no 'source-ref': built-in algorithms read images by reference",
                            file=str(path), line=number, field="source-ref")
        if key not in record:
            raise UserError(f"label attribute '{key}' is missing (keys: {', '.join(sorted(record))})",
                            file=str(path), line=number, field=key)
        names.update(_class_names(record, key, label_attribute))
        metadata = record.get(f"{key}-metadata") or record.get(f"{label_attribute}-metadata") or {}
        line_type = metadata.get("type") if isinstance(metadata, dict) else None
        if records and line_type != task_type:
            raise UserError(f"line type {line_type} differs from the first line's {task_type}",
                            file=str(path), line=number, field=f"{key}-metadata.type")
        task_type = line_type
        records += 1
    if records == 0:
        raise UserError("no labelled items in the manifest", file=str(path))
    return ManifestSummary(path, records, ["source-ref", key], names, task_type)


def _class_names(record: dict[str, Any], key: str, label_attribute: str) -> dict[int, str]:
    metadata = record.get(f"{key}-metadata") or record.get(f"{label_attribute}-metadata") or {}
    if "class-map" in metadata:  # object detection
        return {int(k): v for k, v in metadata["class-map"].items()}
    if "internal-color-map" in metadata:  # semantic segmentation (includes background)
        return {int(k): v.get("class-name", k) for k, v in metadata["internal-color-map"].items()}
    value = record.get(key)
    if isinstance(value, int) and "class-name" in metadata:  # classification
        return {value: metadata["class-name"]}
    return {}
