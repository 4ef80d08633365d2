"""Bounding boxes: workers draw any number of boxes of the task's classes on an image.

An answer (the hidden JSON field the template fills, or crowd-bounding-box's own shape):
    {"image_size": {"width": 320, "height": 240},
     "boxes": [{"label": "circle", "left": 10, "top": 20, "width": 50, "height": 40}, ...]}
Consolidation follows Ground Truth: boxes of one class from different workers are matched when
their IoU reaches `iou` ([task] iou, default 0.6), each match group that a strict majority of the
workers drew becomes one box with averaged coordinates, and its confidence is the share of
workers who drew it times their mean IoU with the result. k workers agree when k of them drew
exactly the consolidated boxes (each matched, none extra).
Exported as groundtruth/object-detection.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

from annotate.answers import AnswerError
from annotate.tasktypes._common import cluster_objects, integer, json_field, label_of, majority, number, same_label, setting
from annotate.tasktypes._common import match_score as _match_score
from annotate.tasktypes.base import Consolidation, TaskSpec, TaskType

MAX_BOXES = 500
MAX_SIDE = 20_000  # pixels; larger "images" are a broken answer, not a photo


def iou(a: dict, b: dict) -> float:
    """Intersection over union of two boxes given as left/top/width/height."""
    x1, y1 = max(a["left"], b["left"]), max(a["top"], b["top"])
    x2 = min(a["left"] + a["width"], b["left"] + b["width"])
    y2 = min(a["top"] + a["height"], b["top"] + b["height"])
    inter = max(0.0, x2 - x1) * max(0.0, y2 - y1)
    union = a["width"] * a["height"] + b["width"] * b["height"] - inter
    return inter / union if union > 0 else 0.0


def match_score(got: list[dict], want: list[dict], threshold: float = 0.5) -> float:
    """How well two box sets agree, 0..1 (IoU of same-class boxes matched one to one)."""
    return _match_score(got, want, iou, threshold)


class BoundingBox(TaskType):
    name = "bounding-box"
    gt_type = "groundtruth/object-detection"

    def parse(self, fields: dict[str, str], spec: TaskSpec) -> dict[str, Any]:
        doc = json_field(fields, spec, "boxes")
        if isinstance(doc, dict) and "boundingBox" in doc:
            doc = doc["boundingBox"]
        if not isinstance(doc, dict):
            raise AnswerError("the boxes answer is not a JSON object")
        size = doc.get("image_size", doc.get("inputImageProperties"))
        boxes = doc.get("boxes", doc.get("boundingBoxes"))
        if not isinstance(size, dict):
            raise AnswerError("the boxes answer does not say the image's size (image_size)")
        width, height = integer(size.get("width"), "the image width"), integer(size.get("height"), "the image height")
        if not (0 < width <= MAX_SIDE and 0 < height <= MAX_SIDE):
            raise AnswerError(f"the image size {width}x{height} is not plausible")
        if not isinstance(boxes, list):
            raise AnswerError("the boxes answer has no list of boxes")
        if not boxes and not spec.settings.get("allow_empty", False):
            raise AnswerError("no boxes were drawn")
        if len(boxes) > MAX_BOXES:
            raise AnswerError(f"{len(boxes)} boxes; at most {MAX_BOXES} are accepted")
        out = []
        for n, box in enumerate(boxes, start=1):
            if not isinstance(box, dict):
                raise AnswerError(f"box {n} is not an object")
            b = {"label": label_of(box.get("label"), spec, f"box {n}")}
            for key in ("left", "top", "width", "height"):
                b[key] = round(number(box.get(key), f"box {n}'s {key}"))
            if b["width"] < 1 or b["height"] < 1:
                raise AnswerError(f"box {n} is empty ({b['width']}x{b['height']} pixels)")
            if b["left"] < 0 or b["top"] < 0 or b["left"] + b["width"] > width or b["top"] + b["height"] > height:
                raise AnswerError(f"box {n} ({b['left']},{b['top']} {b['width']}x{b['height']}) lies outside "
                                  f"the {width}x{height} image")
            out.append(b)
        return {"image_size": {"width": width, "height": height}, "boxes": out}

    def consolidate(self, answers: list[tuple[str, Any]], spec: TaskSpec) -> Consolidation:
        threshold = setting(spec, "iou", 0.6, 0.05, 1.0)
        if not answers:
            return Consolidation(None, 0.0, False, {})
        # Answers about another image size than most (a page that loaded a different image) are
        # not comparable: they are left out and count as disagreeing.
        sizes = Counter((a["image_size"]["width"], a["image_size"]["height"]) for _, a in answers)
        (width, height), _ = sizes.most_common(1)[0]
        usable = [a for _, a in answers if (a["image_size"]["width"], a["image_size"]["height"]) == (width, height)]
        n = len(answers)
        clusters = cluster_objects([a["boxes"] for a in usable], same_label(iou), threshold,
                                   lambda members: _mean(members[0]["label"], members))
        kept = [c for c in clusters if len(c["members"]) >= majority(n)]
        boxes = []
        for c in sorted(kept, key=lambda c: (c["rep"]["top"], c["rep"]["left"])):
            box = _mean(c["rep"]["label"], list(c["members"].values()), rounded=True)
            overlap = sum(iou(box, m) for m in c["members"].values()) / len(c["members"])
            boxes.append({**box, "confidence": round(len(c["members"]) / n * overlap, 4)})
        kept_ids = {id(c) for c in kept}
        # A worker agrees when the match groups holding their boxes are exactly the kept ones.
        agreeing = sum(1 for index in range(len(usable))
                       if {id(c) for c in clusters if index in c["members"]} == kept_ids)
        confidence = (sum(b["confidence"] for b in boxes) / len(boxes)) if boxes else agreeing / n
        value = {"image_size": {"width": width, "height": height}, "boxes": boxes}
        return Consolidation(value, confidence, agreeing >= spec.agree,
                             {"agreeing": agreeing, "answers": n, "groups": len(clusters)})

    def manifest_entries(self, spec: TaskSpec, value: Any, confidence: float, meta: dict[str, Any]) -> dict[str, Any]:
        attr = spec.label_attribute
        boxes = value["boxes"]
        return {
            attr: {
                "image_size": [{"width": value["image_size"]["width"], "height": value["image_size"]["height"],
                                "depth": 3}],
                "annotations": [{"class_id": spec.labels.index(b["label"]), "left": b["left"], "top": b["top"],
                                 "width": b["width"], "height": b["height"]} for b in boxes],
            },
            f"{attr}-metadata": {
                "objects": [{"confidence": round(float(b.get("confidence", confidence)), 2)} for b in boxes],
                "class-map": {str(i): label for i, label in enumerate(spec.labels)},
                "type": self.gt_type, **meta,
            },
        }

    def parse_gold(self, gold: str) -> dict[str, Any]:
        return json.loads(gold)

    def score(self, value: Any, gold: Any) -> float:
        return match_score(value["boxes"], gold["boxes"])

    def csv_value(self, value: Any) -> str:
        return json.dumps(value["boxes"], sort_keys=True)


def _mean(label: str, boxes: list[dict], rounded: bool = False) -> dict:
    """The average box (edges averaged, so the result stays inside the image)."""
    n = len(boxes)
    left = sum(b["left"] for b in boxes) / n
    top = sum(b["top"] for b in boxes) / n
    right = sum(b["left"] + b["width"] for b in boxes) / n
    bottom = sum(b["top"] + b["height"] for b in boxes) / n
    if rounded:
        left, top, right, bottom = round(left), round(top), round(right), round(bottom)
    return {"label": label, "left": left, "top": top, "width": right - left, "height": bottom - top}
