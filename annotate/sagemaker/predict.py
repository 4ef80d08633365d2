"""Ask an endpoint (SageMaker or local) for predictions and read its answer.

Each algorithm answers in its own shape; `read_response` turns them into rows of
{"input", "label", "score", ...}. Object detection also counts the boxes scoring at least
a threshold and draws them on the image (the counting walkthrough of the tutorials).
"""

from __future__ import annotations

import io
import json
import mimetypes
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from annotate.errors import UserError
from annotate.sagemaker import endpoint as local_endpoint
from annotate.sagemaker.aws import require_credentials

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif"}


@dataclass
class Prediction:
    input: str
    label: str | None = None
    score: float | None = None
    count: int | None = None  # object detection: boxes at or above the threshold
    boxes: list[dict[str, float]] = field(default_factory=list)
    output: str | None = None  # a file written (image with boxes, segmentation mask)
    raw: Any = None

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "raw" and v not in (None, [])}


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
    data = json.loads(body)
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
    results = []
    for item in inputs:
        body, content_type, name = request_body(item, algorithm)
        if target == "local":
            answer, answer_type = local_endpoint.invoke_local(url, body, content_type, accept)
        else:
            response = runtime.invoke_endpoint(EndpointName=endpoint, Body=body, ContentType=content_type,
                                               Accept=accept)
            answer, answer_type = response["Body"].read(), response.get("ContentType", accept)
        results.extend(read_response(answer, answer_type, name=name, algorithm=algorithm, labels=labels,
                                     threshold=threshold, out_dir=out_dir))
    return results
