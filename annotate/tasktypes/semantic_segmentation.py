"""Semantic segmentation: workers paint (or outline with polygons) one mask per image, a class per
pixel, submitted as a PNG data URL in the class colours (background white, then one colour per
label, see _common.class_colors).

An answer:  {"image_size": {"width": 320, "height": 240}, "mask": "data:image/png;base64,..."}
(crowd-semantic-segmentation's {"annotatedResult": {...}} shape is read too). The mask must be a
PNG of the image's size whose every pixel is a class colour (transparent counts as background).
Consolidation is a per-pixel vote (ties go to the lower class index, background first); k workers
agree when k masks reach a mean IoU of `iou` ([task] iou, default 0.8) with the voted mask. Each
class's confidence is the mean share of votes its pixels won by. Exported as
groundtruth/semantic-segmentation: the voted mask is written as a PNG file that `<attr>-ref`
points to, with the internal-color-map.
"""

from __future__ import annotations

import base64
import binascii
import io
import json
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, UnidentifiedImageError

from annotate.answers import AnswerError
from annotate.tasktypes._common import class_colors, integer, json_field, setting
from annotate.tasktypes.base import Consolidation, TaskSpec, TaskType

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
MAX_MASK_BYTES = 4_000_000
MAX_SIDE = 8_000


def _rgb(hex_color: str) -> tuple[int, int, int]:
    return int(hex_color[1:3], 16), int(hex_color[3:5], 16), int(hex_color[5:7], 16)


def encode_mask(mask: np.ndarray, labels: list[str]) -> str:
    """A class-index array as a PNG data URL in the class colours (an indexed PNG: small, exact)."""
    image = Image.fromarray(mask.astype(np.uint8), mode="P")
    palette = [channel for color in class_colors(labels) for channel in _rgb(color)]
    image.putpalette(palette)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=True)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def png_bytes(data: str) -> bytes:
    """The bytes of a PNG given as a data URL or bare base64; AnswerError when it is not a PNG."""
    text = data.strip()
    if text.startswith("data:"):
        header, _, text = text.partition(",")
        if not header.startswith("data:image/png"):
            raise AnswerError(f"the mask is not a PNG (its data URL says {header[5:40]!r})")
    if len(text) > MAX_MASK_BYTES * 4 // 3 + 4:
        raise AnswerError(f"the mask is over {MAX_MASK_BYTES:,} bytes")
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise AnswerError("the mask is not valid base64") from None
    if not raw.startswith(PNG_SIGNATURE):
        raise AnswerError("the mask is not a PNG image")
    return raw


def decode_mask(data: str, labels: list[str], colors: dict[str, str] | None = None) -> np.ndarray:
    """A mask PNG → class-index array. `colors` maps label → hex colour when the answer brings its own."""
    raw = png_bytes(data)
    try:
        image = Image.open(io.BytesIO(raw))
        # The header alone says the size: a few KB of PNG can claim gigapixels (a decompression
        # bomb), so the size is checked before a pixel is decoded.
        if image.width > MAX_SIDE or image.height > MAX_SIDE:
            raise AnswerError(f"the mask is {image.width}x{image.height}, larger than any task image")
        image.load()
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, SyntaxError, ValueError) as exc:
        if isinstance(exc, AnswerError):
            raise
        raise AnswerError(f"the mask PNG cannot be read: {exc}") from None
    rgba = np.asarray(image.convert("RGBA"), dtype=np.uint32)
    packed = (rgba[..., 0] << 16) | (rgba[..., 1] << 8) | rgba[..., 2]
    packed[rgba[..., 3] == 0] = 0xFFFFFF  # unpainted (transparent) pixels are background
    palette = class_colors(labels)
    if colors:
        palette = [palette[0]] + [colors.get(label, palette[i + 1]) for i, label in enumerate(labels)]
    lookup = {int(_rgb(c)[0] << 16 | _rgb(c)[1] << 8 | _rgb(c)[2]): i for i, c in enumerate(palette)}
    mask = np.zeros(packed.shape, dtype=np.uint8)
    known = np.zeros(packed.shape, dtype=bool)
    for value, index in lookup.items():
        hit = packed == value
        mask[hit] = index
        known |= hit
    if not known.all():
        bad = packed[~known]
        example = f"#{int(bad[0]):06x}"
        raise AnswerError(f"the mask has {bad.size} pixels in colours that belong to no class (e.g. {example})")
    return mask


def rasterize(width: int, height: int, polygons: list[dict], labels: list[str]) -> np.ndarray:
    """Class-index mask from polygons ({"label", "points": [[x, y], ...]}), later ones on top."""
    image = Image.new("L", (width, height), 0)
    draw = ImageDraw.Draw(image)
    for polygon in polygons:
        points = [tuple(p) for p in polygon["points"]]
        draw.polygon(points, fill=labels.index(polygon["label"]) + 1)
    return np.asarray(image, dtype=np.uint8)


def mean_iou(a: np.ndarray, b: np.ndarray) -> float:
    """Mean IoU over the classes present in either mask (background included)."""
    classes = np.union1d(np.unique(a), np.unique(b))
    scores = []
    for c in classes:
        x, y = a == c, b == c
        scores.append(np.logical_and(x, y).sum() / np.logical_or(x, y).sum())
    return float(np.mean(scores)) if scores else 1.0


class SemanticSegmentation(TaskType):
    name = "semantic-segmentation"
    gt_type = "groundtruth/semantic-segmentation"

    def parse(self, fields: dict[str, str], spec: TaskSpec) -> dict[str, Any]:
        doc = json_field(fields, spec, "mask")
        colors = None
        if isinstance(doc, dict) and ("annotatedResult" in doc or "labeledImage" in doc):
            # crowd-semantic-segmentation's shape, whole or (named by [task] field) its inner object
            result = doc.get("annotatedResult", doc)
            if not isinstance(result, dict):
                raise AnswerError("annotatedResult is not an object")
            mappings = result.get("labelMappings") or {}
            colors = {k: v.get("color") for k, v in mappings.items() if isinstance(v, dict) and v.get("color")}
            doc = {"image_size": result.get("inputImageProperties"),
                   "mask": (result.get("labeledImage") or {}).get("pngImageData")}
        if not isinstance(doc, dict):
            raise AnswerError("the mask answer is not a JSON object")
        size, data = doc.get("image_size"), doc.get("mask")
        if not isinstance(size, dict):
            raise AnswerError("the mask answer does not say the image's size (image_size)")
        width, height = integer(size.get("width"), "the image width"), integer(size.get("height"), "the image height")
        if not isinstance(data, str) or not data.strip():
            raise AnswerError("the answer holds no mask")
        mask = decode_mask(data, spec.labels, colors)
        if mask.shape != (height, width):
            raise AnswerError(f"the mask is {mask.shape[1]}x{mask.shape[0]} but the image is {width}x{height}")
        if not mask.any() and not spec.settings.get("allow_empty", False):
            raise AnswerError("nothing was painted: the mask is all background")
        return {"image_size": {"width": width, "height": height}, "mask": encode_mask(mask, spec.labels)}

    def consolidate(self, answers: list[tuple[str, Any]], spec: TaskSpec) -> Consolidation:
        threshold = setting(spec, "iou", 0.8, 0.05, 1.0)
        if not answers:
            return Consolidation(None, 0.0, False, {})
        n_classes = len(spec.labels) + 1
        masks = [decode_mask(a["mask"], spec.labels) for _, a in answers]
        shape = max({m.shape for m in masks}, key=lambda s: sum(m.shape == s for m in masks))
        same = [m for m in masks if m.shape == shape]  # another size cannot be voted pixel by pixel
        votes = np.stack([sum((m == c).astype(np.uint16) for m in same) for c in range(n_classes)])
        voted = votes.argmax(axis=0).astype(np.uint8)  # ties: the lower class index
        share = votes.max(axis=0) / len(masks)
        ious = [mean_iou(m, voted) if m.shape == shape else 0.0 for m in masks]
        agreeing = sum(1 for v in ious if v >= threshold)
        confidences = {}
        for c in range(n_classes):
            where = voted == c
            if where.any():
                confidences[str(c)] = round(float(share[where].mean()), 4)
            else:  # nobody's class here: how many workers also left it out
                confidences[str(c)] = round(sum(1 for m in masks if not (m == c).any()) / len(masks), 4)
        value = {"image_size": {"width": int(shape[1]), "height": int(shape[0])},
                 "mask": encode_mask(voted, spec.labels), "confidences": confidences,
                 "labels": list(spec.labels)}  # the value names its classes, so it can be scored alone
        return Consolidation(value, float(share.mean()), agreeing >= spec.agree,
                             {"agreeing": agreeing, "ious": [round(v, 4) for v in ious]})

    def write_artifacts(self, spec: TaskSpec, item_id: str, value: Any, out_dir: Path) -> dict[str, str]:
        """The voted mask as `<out_dir>/masks/<item>.png` (what `<attr>-ref` points to)."""
        path = Path(out_dir) / "masks" / f"{item_id}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".png.tmp")
        tmp.write_bytes(png_bytes(value["mask"]))
        tmp.replace(path)
        return {"ref": str(path.resolve())}

    def manifest_entries(self, spec: TaskSpec, value: Any, confidence: float, meta: dict[str, Any],
                         artifacts: dict[str, str] | None = None) -> dict[str, Any]:
        if not artifacts or "ref" not in artifacts:
            raise ValueError("a segmentation manifest line needs its mask file: call write_artifacts first")
        attr = spec.label_attribute
        per_class = value.get("confidences", {})
        color_map = {str(i): {"class-name": "BACKGROUND" if i == 0 else spec.labels[i - 1], "hex-color": color,
                              "confidence": round(float(per_class.get(str(i), confidence)), 2)}
                     for i, color in enumerate(class_colors(spec.labels))}
        return {
            f"{attr}-ref": artifacts["ref"],
            f"{attr}-ref-metadata": {"internal-color-map": color_map, "type": self.gt_type, **meta},
        }

    def parse_gold(self, gold: str) -> dict[str, Any]:
        """Gold as the value shape ({"image_size", "mask"}) or as polygons to rasterize
        ({"image_size", "polygons": [{"label", "points"}]}); rasterized when scored (see gold_mask)."""
        return json.loads(gold)

    def score(self, value: Any, gold: Any) -> float:
        labels = value["labels"]
        return mean_iou(decode_mask(value["mask"], labels), gold_mask(gold, labels))

    def csv_value(self, value: Any) -> str:
        return json.dumps({"image_size": value["image_size"], "confidences": value.get("confidences", {})},
                          sort_keys=True)


def gold_mask(gold: dict[str, Any], labels: list[str]) -> np.ndarray:
    size = gold["image_size"]
    if "mask" in gold:
        return decode_mask(gold["mask"], labels)
    return rasterize(size["width"], size["height"], gold["polygons"], labels)
