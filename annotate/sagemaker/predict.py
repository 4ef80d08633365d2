"""Ask an endpoint (SageMaker or local) for predictions and read its answer.

Each algorithm answers in its own shape; `read_response` turns them into rows of
{"input", "label", "score", ...}. Object detection also counts the boxes scoring at least
a threshold and draws them on the image (the counting walkthrough of the tutorials).
"""

from __future__ import annotations

import csv
import io
import json
import mimetypes
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from annotate.errors import UserError
from annotate.sagemaker import endpoint as local_endpoint
from annotate.sagemaker.aws import aws_errors, require_credentials

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif"}
MANIFEST_SUFFIXES = {".manifest", ".jsonl"}
# Columns annotate's CSV export adds around an item's own: never features.
EXPORT_COLUMNS = {"id", "label", "label_index", "confidence", "answers", "source-ref", "human-annotated",
                  "machine_confidence"}


@dataclass
class Prediction:
    input: str
    label: str | None = None
    score: float | None = None
    count: int | None = None  # object detection: boxes at or above the threshold
    boxes: list[dict[str, float]] = field(default_factory=list)
    output: str | None = None  # a file written (image with boxes, segmentation mask)
    raw: Any = None
    item: dict[str, Any] | None = None  # the item's columns, when the input was an export's row or line

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k not in ("raw", "item") and v not in (None, [])}


def request_body(item: str, algorithm: str | None) -> tuple[bytes, str, str]:
    """(body, content type, display name) for one INPUT: a file, or an inline CSV row."""
    path = Path(item)
    if path.is_file():
        suffix = path.suffix.lower()
        if suffix in IMAGE_SUFFIXES:
            return path.read_bytes(), mimetypes.guess_type(path.name)[0] or "application/x-image", str(path)
        if suffix == ".json":
            return path.read_bytes(), "application/json", str(path)
        return path.read_bytes(), "text/csv", str(path)
    if algorithm in ("image-classification", "object-detection", "semantic-segmentation"):
        raise UserError(f"input file not found: {item}", field="input")
    if item.lstrip().startswith(("{", "[")):
        return item.encode(), "application/json", item
    return item.encode(), "text/csv", item


def _numeric(text: str) -> bool:
    try:
        [float(part) for part in text.replace(",", " ").split()] or float("x")
    except ValueError:
        return False
    return True


def _row_body(values: dict[str, Any], features: list[str], where: str, file: str, line: int) -> bytes:
    """One CSV line of the features in training order (spaced values, e.g. pixels, kept as one field)."""
    missing = [f for f in features if f not in values]
    if missing:
        raise UserError(f"{where} has no column {', '.join(missing)} (the model was trained on "
                        f"{', '.join(features)})", file=file, line=line, field=missing[0])
    out = io.StringIO()
    fields = []
    for name in features:
        value = values[name]
        text = " ".join(map(str, value)) if isinstance(value, list) else str(value if value is not None else "")
        if not text.strip() or not _numeric(text):
            raise UserError(f"feature '{name}' is not numeric: {text[:40]!r}", file=file, line=line, field=name)
        fields.append(text)
    csv.writer(out, lineterminator="").writerow(fields)
    return out.getvalue().encode()


def expand_input(item: str, algorithm: str | None,
                 features: list[str]) -> list[tuple[bytes, str, str, dict[str, Any] | None]]:
    """The requests for one INPUT. annotate's own exports are taken as they are: a CSV with a header
    gives one request per row (id, label and other export columns dropped, the features in the
    order the model was trained on); a manifest gives one per line (its image for the built-in
    algorithms, its `source` features for script mode). Anything else is sent as it is.
    Each request comes with its item's columns (None for a bare row), for --to-batch."""
    path = Path(item)
    suffix = path.suffix.lower() if path.is_file() else ""
    if suffix == ".csv":
        with path.open(newline="", encoding="utf-8") as handle:
            rows = list(csv.reader(handle))
        header = rows[0] if rows else []
        if not header or all(_numeric(field) for field in header if field.strip()):
            return [(*request_body(item, algorithm), None)]  # plain rows of numbers
        if algorithm in ("image-classification", "object-detection", "semantic-segmentation"):
            raise UserError(f"{algorithm} predicts images, not CSV rows: give image files or the exported "
                            "manifest", file=str(path), field="input")
        columns = features or [c for c in header if c not in EXPORT_COLUMNS]
        requests = []
        for number, row in enumerate(rows[1:], start=2):
            if not any(field.strip() for field in row):
                continue
            values = dict(zip(header, row))
            name = f"{path.name}:{number}" + (f" ({values['id']})" if values.get("id") else "")
            item = {k: v for k, v in values.items() if k not in EXPORT_COLUMNS - {"id", "source-ref"}}
            requests.append((_row_body(values, columns, name, str(path), number), "text/csv", name, item))
        if not requests:
            raise UserError("no rows to predict", file=str(path))
        return requests
    if suffix in MANIFEST_SUFFIXES:
        from annotate.sagemaker.data import read_manifest

        requests = []
        for number, record in read_manifest(path):
            name = f"{path.name}:{number}"
            if algorithm in ("image-classification", "object-detection", "semantic-segmentation"):
                ref = record.get("source-ref")
                if not ref:
                    raise UserError("no 'source-ref' image to predict", file=str(path), line=number,
                                    field="source-ref")
                if str(ref).startswith("s3://"):
                    raise UserError(f"{ref} is in S3: download the images first", file=str(path), line=number,
                                    field="source-ref")
                image = Path(ref) if Path(ref).is_absolute() else path.parent / ref
                if not image.is_file():
                    raise UserError(f"image not found: {ref}", file=str(path), line=number, field="source-ref")
                body, content_type, _ = request_body(str(image), algorithm)
                requests.append((body, content_type, str(image), {"id": image.stem, "source-ref": str(image)}))
                continue
            source = record.get("source")
            try:
                values = json.loads(source) if isinstance(source, str) else None
            except json.JSONDecodeError:
                values = None
            if not isinstance(values, dict):
                raise UserError("the line's 'source' holds no item columns (JSON object) to predict from",
                                file=str(path), line=number, field="source")
            columns = features or [c for c in values if c not in EXPORT_COLUMNS]
            requests.append((_row_body(values, columns, name, str(path), number), "text/csv", name, dict(values)))
        if not requests:
            raise UserError("no lines to predict", file=str(path))
        return requests
    return [(*request_body(item, algorithm), None)]


def count_objects(detections: list[list[float]], threshold: float = 0.5) -> list[dict[str, float]]:
    """Boxes [class, score, xmin, ymin, xmax, ymax] (relative coordinates) scoring >= threshold."""
    boxes = []
    for row in detections:
        klass, score, xmin, ymin, xmax, ymax = (float(v) for v in row[:6])
        if klass < 0 or score < threshold:  # the algorithm pads with class -1
            continue
        boxes.append({"class": int(klass), "score": score, "xmin": xmin, "ymin": ymin, "xmax": xmax, "ymax": ymax})
    return boxes


def draw_boxes(image_path: Path, boxes: list[dict[str, float]], out_path: Path,
               labels: list[str] | None = None) -> Path:
    """The image with each box outlined and numbered in counting order."""
    from PIL import Image, ImageDraw

    with Image.open(image_path) as source:
        image = source.convert("RGB")
    draw = ImageDraw.Draw(image)
    width, height = image.size
    for number, box in enumerate(boxes, start=1):
        rect = (box["xmin"] * width, box["ymin"] * height, box["xmax"] * width, box["ymax"] * height)
        draw.rectangle(rect, outline=(255, 0, 0), width=max(1, min(width, height) // 150))
        name = labels[box["class"]] if labels and box["class"] < len(labels) else str(box["class"])
        draw.text((rect[0] + 2, rect[1] + 1), f"{number} {name} {box['score']:.2f}", fill=(255, 255, 0))
    out_path.parent.mkdir(parents=True, exist_ok=True)
    image.save(out_path)
    return out_path


def _label(labels: list[str], index: int) -> str:
    return labels[index] if 0 <= index < len(labels) else str(index)


def read_response(body: bytes, content_type: str, *, name: str, algorithm: str | None, labels: list[str],
                  threshold: float = 0.5, out_dir: Path | None = None) -> list[Prediction]:
    """Rows from one endpoint answer, whatever algorithm produced it."""
    if content_type.startswith("image/"):  # semantic segmentation: a class-index mask
        return [_segmentation(body, name, labels, out_dir)]
    if content_type.startswith("text/csv"):
        return [Prediction(name, label=line.split(",")[1] if "," in line else line, raw=line)
                for line in body.decode().splitlines() if line.strip()]
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError):
        text = body[:200].decode("utf-8", errors="replace")
        raise UserError(f"the endpoint's answer for {name} is not JSON ({content_type or 'no content type'}): "
                        f"{text!r}") from None
    if isinstance(data, dict) and "prediction" in data:  # object detection
        boxes = count_objects(data["prediction"], threshold)
        written = None
        if out_dir is not None and Path(name).is_file():
            written = str(draw_boxes(Path(name), boxes, out_dir / f"{Path(name).stem}.boxes.png", labels))
        return [Prediction(name, count=len(boxes), boxes=boxes, output=written, raw=data)]
    if isinstance(data, dict) and "predictions" in data:
        rows = []
        for number, item in enumerate(data["predictions"]):
            row_name = name if len(data["predictions"]) == 1 else f"{name} [{number}]"
            if isinstance(item, dict):  # the scikit-learn script's answer
                rows.append(Prediction(row_name, label=item.get("label"), score=item.get("score"), raw=item))
            else:  # TensorFlow Serving: class probabilities
                best = max(range(len(item)), key=item.__getitem__)
                rows.append(Prediction(row_name, label=_label(labels, best), score=float(item[best]), raw=item))
        return rows
    if isinstance(data, list) and data and all(isinstance(v, (int, float)) for v in data):  # image classification
        best = max(range(len(data)), key=data.__getitem__)
        return [Prediction(name, label=_label(labels, best), score=float(data[best]), raw=data)]
    raise UserError(f"cannot read the endpoint's answer for {name}: {str(data)[:200]}")


def _segmentation(body: bytes, name: str, labels: list[str], out_dir: Path | None) -> Prediction:
    import numpy as np
    from PIL import Image

    mask = np.asarray(Image.open(io.BytesIO(body)))
    values, counts = np.unique(mask, return_counts=True)
    shares = {_label(labels, int(v)): float(c) / mask.size for v, c in zip(values, counts)}
    written = None
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        written = out_dir / f"{Path(name).stem}.mask.png"
        written.write_bytes(body)
    top = max(shares, key=shares.get)
    return Prediction(name, label=top, score=shares[top], output=str(written) if written else None, raw=shares)


def predict(home: Path, endpoint: str, inputs: list[str], *, target: str | None = None, session=None,
            threshold: float = 0.5, out_dir: Path | None = None, accept: str = "application/json") -> list[Prediction]:
    """Send each input to the endpoint; return readable predictions (files written to out_dir)."""
    if not inputs:
        raise UserError("nothing to predict: give at least one INPUT", field="input")
    if not 0.0 <= threshold <= 1.0:
        raise UserError("threshold must be between 0 and 1", field="threshold")
    record = local_endpoint.load_record(home, endpoint) or {}
    target = target or record.get("target") or "aws"
    algorithm, labels = record.get("algorithm"), list(record.get("labels") or [])
    if target == "local":
        if record.get("target") != "local":
            raise UserError(f"no local endpoint named '{endpoint}': annotate deploy --target local", field="endpoint")
        url = record["url"]
    else:
        if session is None:
            raise UserError("predicting from a SageMaker endpoint needs an AWS session", field="target")
        require_credentials(session)
        runtime = session.client("sagemaker-runtime", region_name=record.get("region") or session.region_name)
    if algorithm == "semantic-segmentation":
        accept = "image/png"
    features = _job_features(home, record.get("job"))
    requests = [request for item in inputs for request in expand_input(item, algorithm, features)]
    results = []
    for body, content_type, name, item in requests:
        if target == "local":
            answer, answer_type = local_endpoint.invoke_local(url, body, content_type, accept)
        else:
            with aws_errors(f"InvokeEndpoint {endpoint} with {name}"):
                response = runtime.invoke_endpoint(EndpointName=endpoint, Body=body, ContentType=content_type,
                                                   Accept=accept)
                answer, answer_type = response["Body"].read(), response.get("ContentType", accept)
        rows = read_response(answer, answer_type, name=name, algorithm=algorithm, labels=labels,
                             threshold=threshold, out_dir=out_dir)
        for row in rows:
            row.item = item
        results.extend(rows)
    return results


def _job_features(home: Path, job: str | None) -> list[str]:
    """The features the endpoint's model was trained on, in order (empty when annotate did not train it)."""
    from annotate.sagemaker.local import jobs_dir, load_job

    if not job or not (jobs_dir(home) / job / "job.json").exists():
        return []
    return list(load_job(home, job).features or [])
