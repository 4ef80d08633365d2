"""Shared helpers for the training scripts: read annotate's exported CSVs, report metrics.

Only the standard library and numpy: this file ships inside the source tarball to
SageMaker's framework containers (scikit-learn, TensorFlow), which have numpy but not
necessarily pandas, and it must run unchanged on a laptop.

CSV shape (annotate export): `id`, the item's input columns, `label` (class name),
`label_index` (int), `confidence`, `answers`. A feature column whose values are
space-separated numbers (e.g. 64 `pixels`) expands into several features.
"""

from __future__ import annotations

import csv
import glob
import json
import os
import sys

import numpy as np

LABEL_COLUMN = "label"
LABEL_INDEX_COLUMN = "label_index"


class DataError(ValueError):
    """The data cannot be trained on or served as given (names the file, line or column)."""


def parse_list(value):
    """A hyperparameter naming several things: a JSON array or a comma-separated string.

    SageMaker passes hyperparameters as command-line strings, so lists travel as JSON
    text (annotate sends them that way); a plain `a,b,c` is accepted for hand use.
    """
    if value is None or value == "":
        return []
    if isinstance(value, (list, tuple)):
        return [str(v) for v in value]
    text = str(value).strip()
    if text.startswith("["):
        return [str(v) for v in json.loads(text)]
    return [part.strip() for part in text.split(",") if part.strip()]


def channel_files(channel_dir):
    """Every CSV file in a channel directory (SageMaker copies the S3 prefix there)."""
    if not channel_dir or not os.path.isdir(channel_dir):
        return []
    return sorted(glob.glob(os.path.join(channel_dir, "**", "*.csv"), recursive=True))


def feature_vector(row, features, where):
    values = []
    for name in features:
        if name not in row:
            raise DataError(f"{where}: feature column '{name}' is missing (columns: {', '.join(row)})")
        text = (row[name] or "").strip()
        if not text:
            raise DataError(f"{where}: feature column '{name}' is empty")
        try:
            values.extend(float(part) for part in text.replace(",", " ").split())
        except ValueError:
            raise DataError(f"{where}: feature column '{name}' is not numeric: {text[:40]!r}") from None
    return values


def read_channel(channel_dir, features):
    """(X, y, names) from every CSV in a channel; names maps label_index -> class name."""
    rows, targets, names = [], [], {}
    for path in channel_files(channel_dir):
        with open(path, newline="", encoding="utf-8") as handle:
            for line_no, row in enumerate(csv.DictReader(handle), start=2):
                where = f"{path}:{line_no}"
                index_text = (row.get(LABEL_INDEX_COLUMN) or "").strip()
                if index_text == "":
                    # Items without consensus are exported without a label: not training data.
                    continue
                index = int(float(index_text))
                rows.append(feature_vector(row, features, where))
                targets.append(index)
                if row.get(LABEL_COLUMN):
                    names[index] = row[LABEL_COLUMN]
    if not rows:
        return np.zeros((0, 0)), np.zeros((0,), dtype=int), names
    widths = {len(r) for r in rows}
    if len(widths) != 1:
        raise DataError(f"{channel_dir}: rows have different numbers of features: {sorted(widths)}")
    return np.asarray(rows, dtype=np.float32), np.asarray(targets, dtype=np.int64), names


def class_names(hp_labels, *name_maps, num_classes=0):
    """Class names by index: from the hyperparameter when given, else from the CSV rows."""
    labels = parse_list(hp_labels)
    if labels:
        return labels
    merged = {}
    for mapping in name_maps:
        merged.update(mapping)
    count = max([num_classes, *(i + 1 for i in merged)]) if merged else num_classes
    return [merged.get(i, str(i)) for i in range(count)]


def report_metrics(metrics, output_dir):
    """One `name=value;` line per metric (the MetricDefinitions regexes match these) and metrics.json."""
    for name, value in metrics.items():
        print(f"{name}={value:.6f};", flush=True)
    if output_dir:
        os.makedirs(output_dir, exist_ok=True)
        with open(os.path.join(output_dir, "metrics.json"), "w", encoding="utf-8") as handle:
            json.dump(metrics, handle, indent=2, sort_keys=True)


def write_metadata(model_dir, **fields):
    """What serving needs besides the weights: feature names and class names."""
    os.makedirs(model_dir, exist_ok=True)
    with open(os.path.join(model_dir, "metadata.json"), "w", encoding="utf-8") as handle:
        json.dump(fields, handle, indent=2, sort_keys=True)


def read_metadata(model_dir):
    path = os.path.join(model_dir, "metadata.json")
    if not os.path.exists(path):
        return {}
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


# ---- serving: the SageMaker inference contract's input side, shared by both scripts ----

def parse_request(body, content_type):
    """Rows from a request body: CSV lines of numbers, or JSON.

    CSV: one instance per line; fields split on commas and whitespace, so a row may be
    `5.1,3.5,1.4,0.2` or a quoted `"0 0 5 13 ..."` pixels field.
    JSON: a list of rows, {"instances": [...]} (TensorFlow Serving's shape), or rows as
    objects keyed by feature name.
    """
    content_type = (content_type or "text/csv").split(";")[0].strip().lower()
    if content_type not in ("text/csv", "text/plain", "application/json"):
        # checked before decoding: an image sent to a CSV model is the wrong type, not bad text
        raise ValueError(f"unsupported content type {content_type!r}: use text/csv or application/json")
    if isinstance(body, (bytes, bytearray)):
        try:
            body = body.decode("utf-8")
        except UnicodeDecodeError:
            raise ValueError(f"the {content_type} body is not UTF-8 text") from None
    if not body.strip():
        raise ValueError("empty request body: send one instance per CSV line, or JSON rows")
    if content_type in ("text/csv", "text/plain"):
        rows = []
        for number, record in enumerate(csv.reader(body.splitlines()), start=1):
            values = [part for field in record for part in field.split()]
            if values:
                try:
                    rows.append([float(v) for v in values])
                except ValueError:
                    raise ValueError(f"line {number}: not a row of numbers: {','.join(record)[:60]!r} "
                                     "(send feature values only, no header or id)") from None
        return rows
    try:
        data = json.loads(body)
    except json.JSONDecodeError as exc:
        raise ValueError(f"the body is not JSON: {exc.msg}") from None
    if isinstance(data, dict):
        data = data.get("instances", data.get("inputs", [data]))
    if not isinstance(data, list):
        raise ValueError("JSON must be a row, a list of rows, or {\"instances\": [...]}")
    if not data:
        raise ValueError("no instances in the request")
    if not isinstance(data[0], (list, dict)):
        data = [data]  # a single instance
    return data


def rows_to_matrix(rows, features):
    """Instances as a float matrix; objects are read by feature name (expanding spaced values)."""
    if not rows:
        raise ValueError("no instances in the request")
    matrix = []
    for number, row in enumerate(rows):
        if isinstance(row, dict):
            matrix.append(feature_vector({k: str(v) if not isinstance(v, list) else " ".join(map(str, v))
                                          for k, v in row.items()}, features, f"instance {number}"))
        else:
            try:
                matrix.append([float(v) for part in row
                               for v in (str(part).split() if isinstance(part, str) else [part])])
            except (TypeError, ValueError):
                raise ValueError(f"instance {number} is not a row of numbers: {str(row)[:60]}") from None
    if len({len(r) for r in matrix}) != 1:
        raise ValueError(f"instances have different numbers of features: {sorted({len(r) for r in matrix})}")
    return np.asarray(matrix, dtype=np.float32)


def encode_response(predictions, accept):
    """(body, content type) for a list of prediction dicts."""
    accept = (accept or "application/json").split(";")[0].strip().lower()
    if accept in ("*/*", ""):
        accept = "application/json"
    if accept == "text/csv":
        lines = [f"{p['label_index']},{p['label']},{p['score']:.6f}" for p in predictions]
        return "\n".join(lines) + "\n", "text/csv"
    if accept == "application/json":
        return json.dumps({"predictions": predictions}), "application/json"
    raise ValueError(f"unsupported accept type {accept!r}: use application/json or text/csv")


def log(message):
    print(message, file=sys.stderr, flush=True)


def fail(message):
    """End training with a reason SageMaker shows as FailureReason (it reads output/failure)."""
    log(f"error: {message}")
    output_dir = os.environ.get("SM_OUTPUT_DIR")
    if output_dir:
        os.makedirs(output_dir, exist_ok=True)
        with open(os.path.join(output_dir, "failure"), "w", encoding="utf-8") as handle:
            handle.write(message)
    sys.exit(1)
