"""Builders for the training tests: exports in exactly the shape annotate.export writes.

No tests here; the test_training_* modules import these helpers.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np

JOB = "labeling-job/demo"


def write_csv(path: Path, rows: list[dict]) -> Path:
    columns = list(rows[0]) if rows else ["id", "label", "label_index", "confidence", "answers"]
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    return path


def classification_rows(features: dict[str, list], y: np.ndarray, labels: list[str]) -> list[dict]:
    rows = []
    for i, target in enumerate(y):
        row = {"id": f"item-{i}"}
        for name, values in features.items():
            value = values[i]
            row[name] = " ".join(str(int(v)) for v in value) if isinstance(value, np.ndarray) else value
        row.update({"label": labels[int(target)], "label_index": int(target), "confidence": 1.0,
                    "answers": json.dumps([labels[int(target)]] * 2)})
        rows.append(row)
    return rows


def manifest_lines(sources: list[str], targets: list[int], labels: list[str], attribute: str) -> list[dict]:
    return [{
        "source-ref": source,
        attribute: int(target),
        f"{attribute}-metadata": {"class-name": labels[int(target)], "confidence": 1.0,
                                  "type": "groundtruth/image-classification", "job-name": JOB,
                                  "human-annotated": "yes", "creation-date": "2024-01-01T00:00:00"},
    } for source, target in zip(sources, targets)]


def write_manifest(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def split_export(out: Path, rows: list[dict], records: list[dict], labels: list[str], attribute: str,
                 split: float = 0.8, seed: int = 0) -> SimpleNamespace:
    """An ExportResult look-alike: full and train/validation CSV and manifest files."""
    out.mkdir(parents=True, exist_ok=True)
    order = np.random.default_rng(seed).permutation(len(rows))
    cut = int(round(len(rows) * split))
    train, validation = order[:cut], order[cut:]
    return SimpleNamespace(
        csv=write_csv(out / "labels.csv", rows),
        train_csv=write_csv(out / "train.csv", [rows[i] for i in train]),
        validation_csv=write_csv(out / "validation.csv", [rows[i] for i in validation]),
        manifest=write_manifest(out / "output.manifest", records),
        train_manifest=write_manifest(out / "train.manifest", [records[i] for i in train]),
        validation_manifest=write_manifest(out / "validation.manifest", [records[i] for i in validation]),
        n_items=len(rows), label_attribute=attribute, labels=labels)


def digits_export(out: Path, limit: int | None = None) -> SimpleNamespace:
    """sklearn's digits as an annotate export: one `pixels` column of 64 space-separated numbers."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    x, y = digits.data[:limit], digits.target[:limit]
    labels = [str(d) for d in range(10)]
    rows = classification_rows({"pixels": list(x)}, y, labels)
    sources = [f"s3://bucket/digits/{i}.png" for i in range(len(y))]
    return split_export(out, rows, manifest_lines(sources, y, labels, "digits"), labels, "digits")


def iris_export(out: Path) -> SimpleNamespace:
    from sklearn.datasets import load_iris

    iris = load_iris()
    names = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
    labels = list(iris.target_names)
    rows = classification_rows({n: list(iris.data[:, i]) for i, n in enumerate(names)}, iris.target, labels)
    sources = [f"s3://bucket/iris/{i}.jpg" for i in range(len(iris.target))]
    return split_export(out, rows, manifest_lines(sources, iris.target, labels, "species"), labels, "species")


IRIS_FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]


def _png(path: Path, size: tuple[int, int], mode: str = "RGB", fill=0) -> str:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, fill).save(path)
    return str(path)


def boxes_export(out: Path, n: int = 15, size: tuple[int, int] = (64, 48)) -> SimpleNamespace:
    """A bounding-box batch's export (groundtruth/object-detection) over local images."""
    labels = ["circle", "square"]
    records = []
    for i in range(n):
        source = _png(out / "images" / f"shape-{i}.png", size, fill=(i * 10, 0, 0))
        records.append({
            "source-ref": source,
            "shapes": {"image_size": [{"width": size[0], "height": size[1], "depth": 3}],
                       "annotations": [{"class_id": i % 2, "left": 4, "top": 4, "width": 20, "height": 20}]},
            "shapes-metadata": {"objects": [{"confidence": 0.9}], "class-map": {"0": "circle", "1": "square"},
                                "type": "groundtruth/object-detection", "job-name": JOB,
                                "human-annotated": "yes", "creation-date": "2024-01-01T00:00:00"},
        })
    rows = [{"id": f"item-{i}", "label": "", "confidence": 0.9, "answers": 2} for i in range(n)]
    return split_export(out, rows, records, labels, "shapes")


def segmentation_export(out: Path, n: int = 10, size: tuple[int, int] = (32, 32)) -> SimpleNamespace:
    """A segmentation batch's export: masks hold 0 (background) to 3, one PNG per item, referenced
    by `<attribute>-ref` as annotate.export writes them."""
    import numpy as np
    from PIL import Image

    labels = ["circle", "square", "triangle"]
    colors = ["#ffffff", "#ff0000", "#00ff00", "#0000ff"]
    records = []
    for i in range(n):
        source = _png(out / "images" / f"shape-{i}.png", size, fill=(0, i * 20, 0))
        mask = np.zeros((size[1], size[0]), dtype=np.uint8)
        mask[4:12, 4:12] = 1 + i % 3
        mask_path = out / "masks" / f"item-{i}.png"
        mask_path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(mask).save(mask_path)
        color_map = {str(c): {"class-name": "BACKGROUND" if c == 0 else labels[c - 1], "hex-color": colors[c],
                              "confidence": 0.9} for c in range(4)}
        records.append({"source-ref": source, "shapes-mask-ref": str(mask_path.resolve()),
                        "shapes-mask-ref-metadata": {"internal-color-map": color_map,
                                                     "type": "groundtruth/semantic-segmentation",
                                                     "job-name": JOB, "human-annotated": "yes",
                                                     "creation-date": "2024-01-01T00:00:00"}})
    rows = [{"id": f"item-{i}", "label": "", "confidence": 0.9, "answers": 2} for i in range(n)]
    return split_export(out, rows, records, labels, "shapes-mask")


def local_digits_export(out: Path, n: int = 20) -> SimpleNamespace:
    """digits as the local marketplace exports them: 8x8 PNGs referenced by local path."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    x, y = digits.data[:n], digits.target[:n]
    labels = [str(d) for d in range(10)]
    sources = [_png(out / "images" / f"digit-{i}.png", (8, 8), mode="L", fill=int(x[i][0])) for i in range(n)]
    rows = classification_rows({"pixels": list(x)}, y, labels)
    return split_export(out, rows, manifest_lines(sources, y, labels, "digit"), labels, "digit")
